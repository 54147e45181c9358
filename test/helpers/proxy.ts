/**
 * An HTTP proxy (node:http) in front of a real registry that injects faults: error statuses,
 * connection resets halfway through a body, stalls, altered bodies, or a custom answer.
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface ProxyRequestInfo {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  /** 1-based: how many requests with this method and path (query stripped) arrived so far. */
  readonly count: number;
}

export type ProxyAction =
  | { readonly kind: 'pass' }
  | { readonly kind: 'status'; readonly status: number; readonly headers?: Record<string, string>; readonly body?: string }
  /** Forward status, headers and the first `bytes` of the body, then destroy the connection. */
  | { readonly kind: 'reset-after'; readonly bytes: number }
  /** Forward the first `bytes` of the body, then hang until the client goes away. */
  | { readonly kind: 'stall-after'; readonly bytes: number }
  /** Buffer the upstream body and send `body(b)` instead (content-length fixed, other headers kept). */
  | { readonly kind: 'transform'; readonly body: (b: Buffer) => Buffer }
  | { readonly kind: 'respond'; readonly handle: (req: IncomingMessage, res: ServerResponse) => void };

export interface TestProxy {
  readonly host: string;
  readonly url: string;
  readonly requests: ProxyRequestInfo[];
  stop(): Promise<void>;
}

export async function startProxy(target: string, decide: (info: ProxyRequestInfo) => ProxyAction): Promise<TestProxy> {
  const upstream = new URL(target);
  const counts = new Map<string, number>();
  const requests: ProxyRequestInfo[] = [];
  const sockets = new Set<Socket>();
  let selfOrigin = '';

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const k = `${req.method} ${path}`;
    const count = (counts.get(k) ?? 0) + 1;
    counts.set(k, count);
    const info: ProxyRequestInfo = { method: req.method ?? 'GET', path, headers: req.headers, count };
    requests.push(info);
    const action = decide(info);
    if (action.kind === 'status') {
      req.resume();
      res.writeHead(action.status, { 'content-type': 'text/plain', ...action.headers });
      res.end(action.body ?? `injected ${action.status}\n`);
      return;
    }
    if (action.kind === 'respond') {
      action.handle(req, res);
      return;
    }
    const headers = { ...req.headers, host: upstream.host };
    const up = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (ur) => {
      const outHeaders = { ...ur.headers };
      if (outHeaders['location']) outHeaders['location'] = outHeaders['location'].replace(upstream.origin, selfOrigin);
      if (action.kind === 'transform') {
        const chunks: Buffer[] = [];
        ur.on('data', (c: Buffer) => chunks.push(c));
        ur.on('end', () => {
          const body = action.body(Buffer.concat(chunks));
          res.writeHead(ur.statusCode ?? 502, { ...outHeaders, 'content-length': String(body.length) });
          res.end(body);
        });
        return;
      }
      res.writeHead(ur.statusCode ?? 502, outHeaders);
      if (action.kind === 'pass') {
        ur.pipe(res);
        return;
      }
      let sent = 0;
      let cut = false;
      ur.on('data', (c: Buffer) => {
        if (cut) return;
        const room = action.bytes - sent;
        if (c.length < room) {
          res.write(c);
          sent += c.length;
          return;
        }
        res.write(c.subarray(0, room));
        sent += room;
        cut = true;
        ur.destroy();
        if (action.kind === 'reset-after') {
          // Let the bytes go out, then cut the connection.
          setTimeout(() => res.socket?.destroy(), 20);
        }
        // stall-after: keep the socket open until the client gives up.
      });
      ur.on('end', () => {
        if (!cut) res.end();
      });
    });
    up.on('error', () => res.socket?.destroy());
    req.pipe(up);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  selfOrigin = `http://127.0.0.1:${port}`;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
