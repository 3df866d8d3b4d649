// A tiny application behind Kenshin's gateway (deploy/nginx-gateway.conf): plain node:http and jose.
//
// It trusts nothing in the request but X-Kenshin-Assertion, a JWT that Kenshin signed: the signature
// (Kenshin's JWKS), the issuer (KENSHIN_PUBLIC_URL), the audience (KENSHIN_GATEWAY_AUDIENCE), the
// expiry (60 s), and the certificate binding (cnf x5t#S256, RFC 8705) against the client certificate
// nginx forwards. The X-Kenshin-* headers carry the same facts for applications that cannot verify
// a JWT; this one only echoes them (as JSON, ?format=json) to show what nginx handed over.
//
//   KENSHIN_ISSUER=https://app.example.jp/ KENSHIN_AUDIENCE=kenshin-gateway LISTEN=127.0.0.1:3000 \
//     node examples/gateway-upstream/server.mjs
//
// KENSHIN_JWKS_URL defaults to <issuer>.well-known/jwks.json. Run with NODE_EXTRA_CA_CERTS when the
// site's certificate comes from a private CA.
import http from 'node:http';
import { createHash } from 'node:crypto';
import { Buffer } from 'node:buffer';
import { URL } from 'node:url';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const issuer = required('KENSHIN_ISSUER');
const audience = required('KENSHIN_AUDIENCE');
const jwks = createRemoteJWKSet(new URL(process.env.KENSHIN_JWKS_URL || new URL('.well-known/jwks.json', issuer).href));
const [host, port] = (process.env.LISTEN || '127.0.0.1:3000').split(/:(?=\d+$)/);

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is required`);
    process.exit(2);
  }
  return v;
}

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** base64url SHA-256 of the DER in nginx's $ssl_client_escaped_cert (URL-escaped PEM). */
function thumbprintOf(escapedPem) {
  const pem = decodeURIComponent(escapedPem);
  const b64 = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem)?.[1]?.replace(/\s+/g, '');
  return b64 ? createHash('sha256').update(Buffer.from(b64, 'base64')).digest('base64url') : undefined;
}

/** The verified claims, or a reason why not. */
async function who(req) {
  const token = req.headers['x-kenshin-assertion'];
  if (typeof token !== 'string' || token === '') return { error: 'no_assertion' };
  let payload;
  try {
    ({ payload } = await jwtVerify(token, jwks, { issuer, audience, algorithms: ['ES256'], typ: 'kenshin-assertion+jwt' }));
  } catch (e) {
    return { error: `assertion_refused: ${e.code ?? e.message}` };
  }
  // Bound to the certificate of this very connection: an assertion copied from another clinic's
  // request is useless here.
  const cert = req.headers['x-ssl-client-cert'];
  if (typeof cert !== 'string' || thumbprintOf(cert) !== payload.cnf?.['x5t#S256']) return { error: 'certificate_mismatch' };
  return { claims: payload };
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://upstream.invalid');
  const w = await who(req);
  const received = Object.fromEntries(Object.entries(req.headers).filter(([k]) => k.startsWith('x-kenshin-')));
  if (url.searchParams.get('format') === 'json') {
    // What arrived, for a look (and the tests): the request body too, as text.
    let body = '';
    for await (const chunk of req) body += chunk;
    res.writeHead(w.error ? 401 : 200, { 'Content-Type': 'application/json' });
    return res.end(JSON.stringify({ path: url.pathname, method: req.method, body, ...w, headers: received }));
  }
  if (w.error) {
    res.writeHead(401, { 'Content-Type': 'text/plain; charset=utf-8' });
    return res.end(`401 ${w.error}\n`);
  }
  const c = w.claims;
  // The renewal banner: the same rule as Kenshin's (90 days or less), linking to its check page.
  const banner =
    c.certificate.days_left <= 90
      ? `<p class="banner">証明書の有効期限まで残り ${escapeHtml(c.certificate.days_left)} 日です。<a href="/renewal/check">証明書更新チェック</a></p>`
      : '';
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(`<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>健診アプリ (example)</title></head>
<body>
${banner}
<h1>健診アプリ</h1>
<dl>
  <dt>契約先</dt><dd id="tenant">${escapeHtml(c.tenant)}</dd>
  <dt>機関番号</dt><dd id="institution">${escapeHtml(c.institution)}</dd>
  <dt>健診機関</dt><dd id="institution-name">${escapeHtml(c.institution_name)}</dd>
  <dt>ログインID</dt><dd id="user">${escapeHtml(c.login_id)}</dd>
  <dt>権限</dt><dd id="role">${escapeHtml(c.role)}</dd>
  <dt>ページ</dt><dd id="path">${escapeHtml(url.pathname + url.search)}</dd>
</dl>
<nav><a href="/renewal/check" id="menu-renewal-check">証明書更新チェック</a> <form method="post" action="/logout"><button>ログアウト</button></form></nav>
</body></html>
`);
});

server.listen(Number(port), host, () => {
  const a = server.address();
  console.log(`listening on http://${a.address}:${a.port}/`);
});
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => server.close(() => process.exit(0)));
