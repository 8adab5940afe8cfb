import { ApolloProvider } from '@apollo/client';
import { useEffect, useState, type ReactNode } from 'react';
import { BrowserRouter, Navigate, Route, Routes, useLocation } from 'react-router-dom';
import { createApiClient, type ApiClient } from './api/client';
import { AuthProvider, useAuth, useSession } from './auth/AuthContext';
import { LoginPage } from './auth/LoginPage';
import { canReadModels, canReadPatients, homePath } from './auth/permissions';
import { Forbidden } from './components/Forbidden';
import { Layout } from './components/Layout';
import { usePageTitle } from './components/usePageTitle';
import { FleetPage } from './fleet/FleetPage';
import { ModelsPage } from './models/ModelsPage';
import { PatientPage } from './patient/PatientPage';
import { WardPage } from './ward/WardPage';

/** Signed-in pages get a GraphQL client bound to the session's token; others go to the login page. */
function SignedIn({ children }: { children: ReactNode }) {
  const { session, signOut, signedOutByUser } = useAuth();
  const location = useLocation();
  const token = session?.token;
  const [api, setApi] = useState<ApiClient | null>(null);

  useEffect(() => {
    if (!token) return undefined;
    const client = createApiClient(token, () => signOut('Your session has ended. Sign in again.'));
    setApi(client);
    return () => {
      setApi(null);
      client.dispose();
    };
  }, [token, signOut]);

  if (!session) {
    const from = signedOutByUser ? undefined : { from: location.pathname + location.search };
    return <Navigate to="/login" replace state={from} />;
  }
  if (!api) return null;
  return <ApolloProvider client={api.apollo}>{children}</ApolloProvider>;
}

function Home() {
  const { identity } = useSession();
  usePageTitle('Ward');
  if (!canReadPatients(identity.role)) return <Navigate to={homePath(identity.role)} replace />;
  return <WardPage />;
}

function Titled({ title, children }: { title: string; children: ReactNode }) {
  usePageTitle(title);
  return <>{children}</>;
}

function ModelsRoute() {
  const { identity } = useSession();
  if (!canReadModels(identity.role)) return <Forbidden message="You are not permitted to view models and rollouts." />;
  return <ModelsPage />;
}

export function App() {
  return (
    <AuthProvider>
      <BrowserRouter>
        <Routes>
          <Route path="/login" element={<Titled title="Sign in"><LoginPage /></Titled>} />
          <Route element={<SignedIn><Layout /></SignedIn>}>
            <Route index element={<Home />} />
            <Route path="patients/:id" element={<Titled title="Patient"><PatientPage /></Titled>} />
            <Route path="fleet" element={<Titled title="Fleet"><FleetPage /></Titled>} />
            <Route path="models" element={<Titled title="Models"><ModelsRoute /></Titled>} />
            <Route path="*" element={<Titled title="Not found"><h1>Page not found</h1><p>There is no page at this address.</p></Titled>} />
          </Route>
        </Routes>
      </BrowserRouter>
    </AuthProvider>
  );
}
