// A loopback OpenID Connect provider standing in for Pro Santé Connect in the tests (panva's oidc-provider,
// certified by the OpenID Foundation). One confidential client, PKCE required, PSC's `scope_all` claims
// (SubjectNameID: the IdNat_PS, "8" + RPPS), and a login form that stands in for the e-CPS step: the
// account is the IdNat typed in, and the eIDAS level it was authenticated at is chosen on the form, so that
// a test can log in at a level other than the one the hub requires.
//
// Usage: node provider.mjs <client_id> <client_secret> <redirect_uri> <post_logout_redirect_uri>
// Prints "READY <issuer>" once it listens on 127.0.0.1 (a free port).
import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const [clientId, clientSecret, redirectUri, postLogoutRedirectUri] = process.argv.slice(2);
// PSC's substantial level is eidas1; eidas0 stands for any other level the provider may report.
const ACR_VALUES = ['eidas1', 'eidas0'];

const signingKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
const server = http.createServer();

server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      post_logout_redirect_uris: [postLogoutRedirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    pkce: { required: () => true },
    acrValues: ACR_VALUES,
    scopes: ['openid', 'scope_all'],
    claims: {
      openid: ['sub'],
      scope_all: ['SubjectNameID', 'preferred_username', 'given_name', 'family_name', 'SubjectRefPro'],
    },
    // A kid of its own per run: a key set cached from an earlier provider on the same port is then fetched again.
    jwks: { keys: [{ ...signingKey, kid: `psc-test-${crypto.randomUUID()}`, use: 'sig', alg: 'RS256' }] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, accountId) {
      return {
        accountId,
        async claims() {
          return {
            sub: accountId,
            SubjectNameID: accountId,
            preferred_username: accountId,
            given_name: 'Test',
            family_name: 'PSC',
            SubjectRefPro: { codeCivilite: 'M', exercices: [] },
          };
        },
      };
    },
    // The professional consents at PSC once and for all: no consent screen for this one client.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid scope_all');
      await grant.save();
      return grant;
    },
  });
  const callback = provider.callback();

  server.on('request', async (req, res) => {
    if (!req.url.startsWith('/interaction/')) return callback(req, res);
    try {
      const details = await provider.interactionDetails(req, res);
      if (req.method === 'GET') {
        const options = ACR_VALUES.map((acr) => `<option value="${acr}">${acr}</option>`).join('');
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        return res.end(`<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Pro Santé Connect (test)</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head><body><main>
<h1>Pro Santé Connect (test)</h1>
<form method="post" action="/interaction/${details.uid}">
<p><label for="login">Identifiant national (IdNat)</label> <input id="login" name="login" autocomplete="username"></p>
<p><label for="acr">Niveau</label> <select id="acr" name="acr">${options}</select></p>
<p><button type="submit">Se connecter avec e-CPS</button></p>
</form></main></body></html>`);
      }
      const chunks = [];
      for await (const chunk of req) chunks.push(chunk);
      const form = new URLSearchParams(Buffer.concat(chunks).toString());
      return await provider.interactionFinished(req, res, {
        login: { accountId: form.get('login'), acr: form.get('acr') },
      }, { mergeWithLastSubmission: false });
    } catch (error) {
      res.statusCode = 400;
      return res.end(String(error));
    }
  });
  console.log(`READY ${issuer}`);
});
