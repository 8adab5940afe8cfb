/** What each role may do, mirroring the API's permission table (the API still decides). */
import type { Role } from './jwt';

const has = (roles: readonly Role[]) => (role: Role) => roles.includes(role);

export const canReadPatients = has(['nurse', 'clinician', 'admin']);
export const canCommandAlarms = has(['nurse', 'clinician']);
export const canCommentAlarms = has(['nurse', 'clinician']);
export const canLabelAlarms = has(['clinician']);
export const canChat = has(['nurse', 'clinician']);
export const canRecordCare = has(['clinician']);
export const canReadFleet = has(['nurse', 'clinician', 'operator', 'admin']);
export const canReadModels = has(['clinician', 'operator', 'admin']);
export const canManageRollouts = has(['operator', 'admin']);

export type NavSection = 'ward' | 'fleet' | 'models';

/** Header links by role: clinical staff watch the ward, operators run the fleet and the models. */
export function navSections(role: Role): NavSection[] {
  switch (role) {
    case 'nurse':
    case 'clinician':
      return ['ward'];
    case 'operator':
      return ['fleet', 'models'];
    case 'admin':
      return ['ward', 'fleet', 'models'];
  }
}

/** Where a role starts after signing in. */
export function homePath(role: Role): string {
  return role === 'operator' ? '/fleet' : '/';
}
