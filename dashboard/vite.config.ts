/// <reference types="vitest/config" />
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The API serves the built app on the same origin; in development these paths go to a running API.
const api = process.env.CARDIOGATE_API ?? 'http://127.0.0.1:8080';
const proxied = { target: api, changeOrigin: true, ws: true };
const proxy = { '/graphql': proxied, '/auth': proxied, '/ws': proxied, '/healthz': proxied };

export default defineConfig(({ command }) => ({
  base: '/',
  plugins: [react()],
  // Apollo Client keeps its development checks behind globalThis.__DEV__; a production build drops them.
  define: command === 'build' ? { 'globalThis.__DEV__': 'false' } : {},
  build: {
    outDir: 'dist',
    sourcemap: false,
    rolldownOptions: {
      output: {
        // Libraries change less often than the app: separate files stay cached across releases.
        codeSplitting: {
          groups: [
            { name: 'react', test: /node_modules[\\/](react|react-dom|react-router|react-router-dom|scheduler|cookie|set-cookie-parser)[\\/]/, priority: 2 },
            { name: 'graphql-client', test: /node_modules[\\/]/, priority: 1 },
          ],
        },
      },
    },
  },
  server: { proxy },
  preview: { proxy },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
}));
