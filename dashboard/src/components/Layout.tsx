import { NavLink, Outlet } from 'react-router-dom';
import { useAuth, useSession } from '../auth/AuthContext';
import { navSections, type NavSection } from '../auth/permissions';

const LINKS: Record<NavSection, { to: string; label: string }> = {
  ward: { to: '/', label: 'Ward' },
  fleet: { to: '/fleet', label: 'Fleet' },
  models: { to: '/models', label: 'Models' },
};

export function Layout() {
  const { signOut } = useAuth();
  const { identity } = useSession();
  return (
    <>
      <a className="skip-link" href="#main">Skip to content</a>
      <header className="app-header">
        <span className="brand" aria-hidden="true">cardiogate</span>
        <nav aria-label="Main">
          <ul>
            {navSections(identity.role).map((section) => (
              <li key={section}>
                <NavLink to={LINKS[section].to} end={section === 'ward'} data-testid={`nav-${section}`}>
                  {LINKS[section].label}
                </NavLink>
              </li>
            ))}
          </ul>
        </nav>
        <p className="whoami" data-testid="whoami" title="Signed in as">
          {identity.username} <span className="role">({identity.role})</span>
        </p>
        <button type="button" data-testid="logout" onClick={() => signOut()}>Sign out</button>
      </header>
      <main id="main" tabIndex={-1}>
        <Outlet />
      </main>
    </>
  );
}
