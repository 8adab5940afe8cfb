import { useState, type FormEvent } from 'react';
import { Dialog } from '../components/Dialog';

export const SILENCE_DURATIONS_S = [60, 120, 300] as const;

interface SilenceDialogProps {
  pseudonym: string;
  alarmText: string;
  onSubmit: (durationS: number, reason: string) => void;
  onCancel: () => void;
}

/** Pausing an alarm's audio takes a duration and a reason (both go into the gateway's audit). */
export function SilenceDialog({ pseudonym, alarmText, onSubmit, onCancel }: SilenceDialogProps) {
  const [durationS, setDurationS] = useState<number>(120);
  const [reason, setReason] = useState('');
  const [error, setError] = useState<string | null>(null);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!reason.trim()) {
      setError('Enter a reason for pausing the alarm audio.');
      return;
    }
    onSubmit(durationS, reason.trim());
  };

  return (
    <Dialog title={`Pause alarm audio for ${pseudonym}`} onClose={onCancel}>
      <form onSubmit={submit} className="stack" noValidate>
        <p>{alarmText}</p>
        <label htmlFor="silence-duration">Duration</label>
        <select id="silence-duration" data-testid="silence-duration" value={durationS}
          onChange={(e) => setDurationS(Number(e.target.value))}>
          {SILENCE_DURATIONS_S.map((s) => (
            <option key={s} value={s}>{s} s ({s / 60} min)</option>
          ))}
        </select>
        <label htmlFor="silence-reason">Reason (required)</label>
        <textarea id="silence-reason" data-testid="silence-reason" rows={3} maxLength={500} required
          aria-required="true" aria-invalid={error ? true : undefined}
          aria-describedby={error ? 'silence-error' : undefined}
          value={reason} onChange={(e) => setReason(e.target.value)} />
        {error && <p id="silence-error" role="alert" className="error-text">{error}</p>}
        <div className="button-row">
          <button type="button" onClick={onCancel}>Cancel</button>
          <button type="submit" className="primary" data-testid="confirm">Pause audio</button>
        </div>
      </form>
    </Dialog>
  );
}
