/** A WebSocket URL on the page's own origin (ws: for http:, wss: for https:). */
export function socketUrl(path: string, base: string = window.location.href): string {
  const url = new URL(path, base);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}
