import { useId, useState, type FormEvent } from 'react';
import { Dialog } from './Dialog';

interface ConfirmDialogProps {
  title: string;
  message: string;
  confirmLabel: string;
  /** Whether the action is destructive (the button is styled as a warning). */
  danger?: boolean;
  busy?: boolean;
  error?: string | null;
  onConfirm: (reason: string) => void;
  onCancel: () => void;
}

/** Asks before an action, with an optional reason that goes into the record. */
export function ConfirmDialog({ title, message, confirmLabel, danger, busy, error, onConfirm, onCancel }: ConfirmDialogProps) {
  const [reason, setReason] = useState('');
  const reasonId = useId();
  const submit = (event: FormEvent) => {
    event.preventDefault();
    onConfirm(reason.trim());
  };
  return (
    <Dialog title={title} onClose={onCancel}>
      <form onSubmit={submit} className="stack">
        <p>{message}</p>
        <label htmlFor={reasonId}>Reason (optional)</label>
        <textarea id={reasonId} data-testid="confirm-reason" rows={3} maxLength={500} value={reason}
          onChange={(e) => setReason(e.target.value)} />
        {error && <p role="alert" className="error-text">{error}</p>}
        <div className="button-row">
          <button type="button" onClick={onCancel}>Cancel</button>
          <button type="submit" data-testid="confirm" className={danger ? 'danger' : 'primary'} disabled={busy}>
            {busy ? 'Working…' : confirmLabel}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
