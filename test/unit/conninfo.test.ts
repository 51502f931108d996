import { describe, expect, it } from 'vitest';
import { describeEndpoint, parseConnection, parseConninfo, rememberedPassword } from '../../lib/pg/conn.js';
import { InvalidOptionError, redact, redactCredentials, registerSecret } from '../../lib/errors.js';

describe('libpq key=value connection strings', () => {
  it('parses quoted values with \\\' and \\\\ escapes and spaces around =', () => {
    const m = parseConninfo("host = db1  port=6432 dbname='my db' user=app password='it\\'s a \\\\secret' options='-c work_mem=64MB'");
    expect(Object.fromEntries(m)).toEqual({ host: 'db1', port: '6432', dbname: 'my db', user: 'app', password: "it's a \\secret", options: '-c work_mem=64MB' });
  });

  it('fills the same endpoint as a URL and remembers the password', () => {
    const e = parseConnection("host=10.0.0.5 hostaddr=127.0.0.1 port=5433 dbname=shop user=app password='p w x' sslmode=require application_name=nightly connect_timeout=7");
    expect(e).toEqual({
      host: '10.0.0.5', hostaddr: '127.0.0.1', port: 5433, database: 'shop', user: 'app', sslmode: 'require',
      applicationName: 'nightly', connectTimeout: 7,
    });
    expect(rememberedPassword(e)).toBe('p w x');
    const u = parseConnection('postgres://app:pw123@10.0.0.5:5433/shop?sslmode=require');
    expect(u).toMatchObject({ host: '10.0.0.5', port: 5433, database: 'shop', user: 'app', sslmode: 'require' });
  });

  it('refuses unknown keys and bad syntax with a usage error that never shows a value', () => {
    const cases = ["host=h passwrod=topsecret1", "host=h password='topsecret2", 'host h password=topsecret3', 'port=notaport password=topsecret4'];
    for (const c of cases) {
      let err: unknown;
      try { parseConnection(c); } catch (e) { err = e; }
      expect(err, c).toBeInstanceOf(InvalidOptionError);
      expect((err as Error).message).not.toMatch(/topsecret/);
    }
  });

  it('refuses a URL of another scheme (it would have connected to its host and port) without showing its password', () => {
    for (const u of ['mysql://app:topsecret5@127.0.0.1:3306/shop', 'http://app:topsecret6@db1/shop', 'jdbc:postgresql://db1/shop']) {
      let err: unknown;
      try { parseConnection(u); } catch (e) { err = e; }
      expect(err, u).toBeInstanceOf(InvalidOptionError);
      expect((err as Error).message).toMatch(/not a PostgreSQL URL/);
      expect((err as Error).message).not.toMatch(/topsecret/);
    }
    expect(parseConnection('postgresql://app@db1:5433/shop')).toMatchObject({ host: 'db1', port: 5433, database: 'shop', user: 'app' });
    expect(parseConnection('POSTGRES://app@db1/shop')).toMatchObject({ host: 'db1', database: 'shop' });
  });

  it('redacts password=… pairs and registered passwords', () => {
    expect(redact("cannot reach host=h password=abc123 port=1")).toBe('cannot reach host=h password=*** port=1');
    expect(redact("x password = 'a b\\' c' y")).toBe('x password = *** y');
    const e = parseConnection('host=127.0.0.1 password=s3cr3t-zz');
    expect(describeEndpoint({ ...e, host: 'h-s3cr3t-zz' })).not.toContain('s3cr3t-zz');
  });

  it('masks a short registered secret only where it stands alone, a long one anywhere', () => {
    registerSecret('bnch7');
    // A name that merely contains the password is kept (plans and messages name tables).
    expect(redact('table bnch7_t on db bnch7, user xbnch7 (bnch7)')).toBe('table bnch7_t on db ***, user xbnch7 (***)');
    expect(redact('postgres://u:bnch7@h/db bnch7-x')).toBe('postgres://u:***@h/db ***-x');
    registerSecret('p w+d');
    expect(redact('sent p%20w%2Bd and p w+d')).toBe('sent *** and ***');
    registerSecret('Zq81longsecretvalue');
    expect(redact('glued aZq81longsecretvalueb')).toBe('glued a***b');
    // Plan files: URL credentials and password= pairs only, so a name equal to a secret reads back.
    expect(redactCredentials('{"database":"bnch7","url":"postgres://u:pw@h/bnch7"} password=x1'))
      .toBe('{"database":"bnch7","url":"postgres://u:***@h/bnch7"} password=***');
  });
});
