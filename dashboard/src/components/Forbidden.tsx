interface ForbiddenProps {
  title?: string;
  message?: string;
}

export function Forbidden({ title = 'Not permitted', message = 'You are not permitted to view this page.' }: ForbiddenProps) {
  return (
    <section className="forbidden">
      <h1>{title}</h1>
      <p data-testid="forbidden">{message}</p>
    </section>
  );
}

export const PATIENT_FORBIDDEN = 'You are not permitted to view this patient.';
