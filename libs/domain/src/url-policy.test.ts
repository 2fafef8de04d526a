import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkEndpointResolution,
  checkEndpointUrl,
  checkResolvedAddress,
  classifyAddress,
  defaultUrlPolicy,
  type AddressClass,
  type UrlPolicy,
} from './url-policy.js';

function policy(overrides: Partial<UrlPolicy> = {}): UrlPolicy {
  return { ...defaultUrlPolicy, ...overrides };
}

/** `pass` is the expected hostname of the parsed URL; `refuse` a substring the reason must contain. */
type UrlCase = { url: string; policy?: Partial<UrlPolicy> } & ({ pass: string } | { refuse: string });

const urlCases: Record<string, UrlCase> = {
  // Good public URLs.
  'public host name': { url: 'https://example.com/hook', pass: 'example.com' },
  'public host with port and query': { url: 'https://hooks.example.com:8443/in?x=1', pass: 'hooks.example.com' },
  'public IPv4 literal': { url: 'https://93.184.216.34/x', pass: '93.184.216.34' },
  'public IPv6 literal': { url: 'https://[2606:4700::1111]/', pass: '[2606:4700::1111]' },
  'upper-case scheme and host': { url: 'HTTPS://EXAMPLE.COM/Hook', pass: 'example.com' },
  'public name with trailing dot': { url: 'https://example.com./hook', pass: 'example.com.' },
  'IPv4-mapped public address': { url: 'https://[::ffff:93.184.216.34]/', pass: '[::ffff:5db8:d822]' },
  'NAT64 of a public address': { url: 'https://[64:ff9b::8.8.8.8]/', pass: '[64:ff9b::808:808]' },
  '6to4 of a public address': { url: 'https://[2002:5db8:d822::1]/', pass: '[2002:5db8:d822::1]' },
  'just outside 172.16/12': { url: 'https://172.32.0.1/', pass: '172.32.0.1' },
  'just outside CGNAT': { url: 'https://100.128.0.1/', pass: '100.128.0.1' },
  'backslash is a path separator, not userinfo': { url: 'https://example.com\\@127.0.0.1/', pass: 'example.com' },

  // Parsing.
  'empty string': { url: '', refuse: 'url is empty' },
  'only whitespace': { url: '   ', refuse: 'url is empty' },
  'not a URL': { url: 'not a url', refuse: 'not a valid absolute URL' },
  'relative path': { url: '/hook', refuse: 'not a valid absolute URL' },
  'missing scheme': { url: 'example.com/hook', refuse: 'not a valid absolute URL' },
  'protocol-relative': { url: '//example.com/hook', refuse: 'not a valid absolute URL' },
  'https without host': { url: 'https://', refuse: 'not a valid absolute URL' },
  'invalid IPv4 (too many parts)': { url: 'https://1.2.3.4.5/', refuse: 'not a valid absolute URL' },
  'IPv4 out of range': { url: 'https://0x100000000/', refuse: 'not a valid absolute URL' },

  // Schemes.
  'http refused by default': { url: 'http://example.com/hook', refuse: 'url must use https' },
  'http allowed with allowHttp': { url: 'http://example.com/hook', policy: { allowHttp: true }, pass: 'example.com' },
  'http to loopback still refused with allowHttp': { url: 'http://127.0.0.1/', policy: { allowHttp: true }, refuse: 'loopback' },
  'ftp scheme': { url: 'ftp://example.com/file', refuse: 'url must use https (got ftp)' },
  'ftp scheme with allowHttp': { url: 'ftp://example.com/file', policy: { allowHttp: true }, refuse: 'url must use https or http' },
  'javascript scheme': { url: 'javascript:alert(1)', refuse: 'url must use https (got javascript)' },
  'file scheme': { url: 'file:///etc/passwd', refuse: 'url must use https (got file)' },
  'gopher scheme': { url: 'gopher://127.0.0.1:6379/_INFO', refuse: 'url must use https' },
  'data scheme': { url: 'data:text/plain,hi', refuse: 'url must use https' },
  'host:port without scheme parses as a scheme': { url: 'localhost:8080', refuse: 'url must use https' },

  // User info, length, fragments.
  'user and password': { url: 'https://user:pass@example.com/', refuse: 'user name or password' },
  'user only': { url: 'https://user@example.com/', refuse: 'user name or password' },
  'password only': { url: 'https://:secret@example.com/', refuse: 'user name or password' },
  'userinfo that looks like a host': { url: 'https://example.com@127.0.0.1/', refuse: 'user name or password' },
  'too long (default 2048)': { url: `https://example.com/${'a'.repeat(2100)}`, refuse: 'longer than 2048 characters' },
  'exactly at the limit': { url: `https://example.com/${'a'.repeat(2048 - 'https://example.com/'.length)}`, pass: 'example.com' },
  'too long (custom limit)': { url: 'https://example.com/a-long-path', policy: { maxLength: 20 }, refuse: 'longer than 20 characters' },
  'too long only after percent-encoding': {
    url: `https://example.com/${' '.repeat(1000)}x`,
    refuse: 'longer than 2048 characters',
  },
  fragment: { url: 'https://example.com/hook#section', refuse: 'fragment' },
  'empty fragment': { url: 'https://example.com/hook#', refuse: 'fragment' },

  // IPv4 literals in every spelling.
  'loopback dotted': { url: 'https://127.0.0.1/', refuse: 'loopback address (127.0.0.1)' },
  'loopback elsewhere in 127/8': { url: 'https://127.45.6.7/', refuse: 'loopback address (127.45.6.7)' },
  'loopback decimal': { url: 'http://2130706433/', policy: { allowHttp: true }, refuse: 'loopback address (127.0.0.1)' },
  'loopback hex dword': { url: 'https://0x7f000001/', refuse: 'loopback address (127.0.0.1)' },
  'loopback hex first octet': { url: 'https://0x7f.0.0.1/', refuse: 'loopback address (127.0.0.1)' },
  'loopback octal': { url: 'https://0177.0.0.1/', refuse: 'loopback address (127.0.0.1)' },
  'loopback octal dword': { url: 'https://017700000001/', refuse: 'loopback address (127.0.0.1)' },
  'loopback mixed hex/octal/decimal': { url: 'https://0x7f.00.0.01/', refuse: 'loopback address (127.0.0.1)' },
  'loopback short form 127.1': { url: 'https://127.1/', refuse: 'loopback address (127.0.0.1)' },
  'loopback short form hex 0x7f.1': { url: 'https://0x7f.1/', refuse: 'loopback address (127.0.0.1)' },
  'loopback with trailing dot': { url: 'https://127.0.0.1./', refuse: 'loopback address (127.0.0.1)' },
  'loopback with port': { url: 'https://127.0.0.1:8080/', refuse: 'loopback' },
  'loopback in full-width digits': { url: 'https://１２７.０.０.１/', refuse: 'loopback address (127.0.0.1)' },
  'double trailing dot after IPv4': { url: 'https://127.0.0.1../', refuse: 'not a valid host name' },
  'zero address short form': { url: 'https://0/', refuse: 'unspecified address (0.0.0.0)' },
  'this network 0/8': { url: 'https://0.1.2.3/', refuse: 'this network' },
  'private 10/8': { url: 'https://10.0.0.1/', refuse: 'private network address (10.0.0.1)' },
  'private 10/8 decimal': { url: 'https://167772161/', refuse: 'private network address (10.0.0.1)' },
  'private 172.16/12 low': { url: 'https://172.16.0.1/', refuse: 'private network' },
  'private 172.16/12 high': { url: 'https://172.31.255.255/', refuse: 'private network' },
  'private 192.168/16': { url: 'https://192.168.1.1/', refuse: 'private network' },
  'private 192.168/16 hex': { url: 'https://0xc0a80101/', refuse: 'private network address (192.168.1.1)' },
  CGNAT: { url: 'https://100.64.0.1/', refuse: 'carrier-grade NAT' },
  'cloud metadata': { url: 'https://169.254.169.254/latest/meta-data/', refuse: 'cloud metadata service address (169.254.169.254)' },
  'cloud metadata decimal': { url: 'https://2852039166/', refuse: 'cloud metadata' },
  'link-local': { url: 'https://169.254.1.1/', refuse: 'link-local address' },
  'IETF protocol assignments': { url: 'https://192.0.0.170/', refuse: 'protocol assignment' },
  'TEST-NET-1': { url: 'https://192.0.2.10/', refuse: 'documentation' },
  'TEST-NET-2': { url: 'https://198.51.100.10/', refuse: 'documentation' },
  'TEST-NET-3': { url: 'https://203.0.113.10/', refuse: 'documentation' },
  'benchmarking 198.18/15': { url: 'https://198.19.255.255/', refuse: 'benchmarking' },
  multicast: { url: 'https://224.0.0.1/', refuse: 'multicast' },
  'multicast SSDP': { url: 'https://239.255.255.250/', refuse: 'multicast' },
  'reserved 240/4': { url: 'https://240.0.0.1/', refuse: 'reserved address' },
  broadcast: { url: 'https://255.255.255.255/', refuse: 'broadcast address' },

  // IPv6 literals.
  'IPv6 loopback': { url: 'https://[::1]/', refuse: 'loopback address (::1)' },
  'IPv6 loopback long form': { url: 'https://[0:0:0:0:0:0:0:1]/', refuse: 'loopback address (::1)' },
  'IPv6 loopback leading zeros': { url: 'https://[0000::0001]:443/', refuse: 'loopback address (::1)' },
  'IPv6 loopback 0::1': { url: 'https://[0::1]/', refuse: 'loopback' },
  'IPv6 unspecified': { url: 'https://[::]/', refuse: 'unspecified address (::)' },
  'IPv4-mapped loopback dotted': { url: 'https://[::ffff:127.0.0.1]/', refuse: 'loopback address (::ffff:7f00:1, an IPv4-mapped form of 127.0.0.1)' },
  'IPv4-mapped loopback hex': { url: 'https://[::ffff:7f00:1]/', refuse: 'IPv4-mapped form of 127.0.0.1' },
  'IPv4-mapped loopback upper case': { url: 'https://[::FFFF:7F00:0001]/', refuse: 'loopback' },
  'IPv4-mapped metadata': { url: 'https://[::ffff:169.254.169.254]/', refuse: 'cloud metadata' },
  'IPv4-mapped private long form': { url: 'https://[0:0:0:0:0:ffff:a00:1]/', refuse: 'private network' },
  'IPv4-compatible (deprecated)': { url: 'https://[::127.0.0.1]/', refuse: 'IPv4-compatible' },
  'IPv4-compatible public is still refused': { url: 'https://[::8.8.8.8]/', refuse: 'IPv4-compatible' },
  'NAT64 loopback': { url: 'https://[64:ff9b::127.0.0.1]/', refuse: 'loopback address (64:ff9b::7f00:1, a NAT64 form of 127.0.0.1)' },
  'NAT64 metadata hex': { url: 'https://[64:ff9b::a9fe:a9fe]/', refuse: 'cloud metadata' },
  '6to4 of loopback': { url: 'https://[2002:7f00:1::]/', refuse: 'loopback address (2002:7f00:1::, a 6to4 form of 127.0.0.1)' },
  '6to4 of private': { url: 'https://[2002:c0a8:101::1]/', refuse: 'private network' },
  'IPv6 link-local': { url: 'https://[fe80::1]/', refuse: 'link-local' },
  'IPv6 link-local upper end': { url: 'https://[febf::1]/', refuse: 'link-local' },
  'IPv6 unique-local fc00': { url: 'https://[fc00::1]/', refuse: 'unique-local' },
  'IPv6 unique-local fd': { url: 'https://[fd12:3456::1]/', refuse: 'unique-local' },
  'AWS metadata IPv6': { url: 'https://[fd00:ec2::254]/', refuse: 'cloud metadata service address (fd00:ec2::254)' },
  'IPv6 site-local': { url: 'https://[fec0::1]/', refuse: 'site-local' },
  'IPv6 multicast': { url: 'https://[ff02::1]/', refuse: 'multicast' },
  'IPv6 documentation': { url: 'https://[2001:db8::1]/', refuse: 'documentation' },
  'IPv6 outside global unicast': { url: 'https://[100::1]/', refuse: 'reserved' },

  // Host names.
  localhost: { url: 'https://localhost/', refuse: 'url host "localhost" is internal' },
  'localhost upper case': { url: 'https://LOCALHOST:3000/', refuse: 'url host "localhost" is internal' },
  'localhost trailing dot': { url: 'https://localhost./', refuse: 'url host "localhost" is internal' },
  'localhost two trailing dots': { url: 'https://localhost../', refuse: 'not a valid host name' },
  'localhost full-width': { url: 'https://ｌｏｃａｌｈｏｓｔ/', refuse: 'url host "localhost" is internal' },
  'localhost percent-encoded': { url: 'https://%6c%6f%63%61%6c%68%6f%73%74/', refuse: 'url host "localhost" is internal' },
  'sub.localhost': { url: 'https://api.localhost/', refuse: 'url host "api.localhost" is internal' },
  '.local': { url: 'https://printer.local/', refuse: '.local names' },
  '.internal': { url: 'https://db.corp.internal/', refuse: '.internal names' },
  'GCP metadata name': { url: 'https://metadata.google.internal/computeMetadata/v1/', refuse: '"metadata.google.internal" is internal' },
  'GCP metadata name, trailing dot and upper case': { url: 'https://Metadata.Google.Internal./', refuse: '"metadata.google.internal" is internal' },
  '.home.arpa': { url: 'https://nas.home.arpa/', refuse: '.home.arpa names' },
  'single label': { url: 'https://intranet/', refuse: 'url host "intranet" is internal (single-label' },
  'single label metadata': { url: 'https://metadata/', refuse: 'single-label' },
  'single label trailing dot': { url: 'https://intranet./', refuse: 'single-label' },
  'single label via extra slashes': { url: 'https:///intranet', refuse: 'single-label' },
  'leading dot': { url: 'https://.example.com/', refuse: 'not a valid host name' },
  'empty label inside': { url: 'https://a..example.com/', refuse: 'not a valid host name' },
  'numeric last label is parsed as a (bad) IPv4 address': { url: 'https://foo.123/', refuse: 'not a valid absolute URL' },
  'hex last label is parsed as a (bad) IPv4 address': { url: 'https://foo.0x/', refuse: 'not a valid absolute URL' },

  // Allowlist.
  'allowlisted name': { url: 'https://localhost:8443/', policy: { allowedHosts: ['localhost'] }, pass: 'localhost' },
  'allowlisted name, URL upper case with trailing dot': { url: 'https://LOCALHOST./', policy: { allowedHosts: ['localhost'] }, pass: 'localhost.' },
  'allowlisted name, entry with trailing dot': { url: 'https://my.internal/', policy: { allowedHosts: ['my.internal.'] }, pass: 'my.internal' },
  'allowlisted name does not cover subdomains': { url: 'https://api.localhost/', policy: { allowedHosts: ['localhost'] }, refuse: 'internal' },
  'allowlisted name does not cover siblings': { url: 'https://other.internal/', policy: { allowedHosts: ['my.internal'] }, refuse: 'internal' },
  'allowlisted name does not cover its IP': { url: 'https://127.0.0.1/', policy: { allowedHosts: ['localhost'] }, refuse: 'loopback' },
  'allowlisted CIDR': { url: 'https://127.0.0.1/', policy: { allowedHosts: ['127.0.0.0/8'] }, pass: '127.0.0.1' },
  'allowlisted CIDR, decimal spelling': { url: 'https://2130706433/', policy: { allowedHosts: ['127.0.0.0/8'] }, pass: '127.0.0.1' },
  'allowlisted CIDR covers IPv4-mapped spelling': { url: 'https://[::ffff:127.0.0.1]/', policy: { allowedHosts: ['127.0.0.0/8'] }, pass: '[::ffff:7f00:1]' },
  'allowlisted CIDR 10/8': { url: 'https://10.20.30.40/', policy: { allowedHosts: ['10.0.0.0/8'] }, pass: '10.20.30.40' },
  'outside allowlisted CIDR': { url: 'https://10.0.0.1/', policy: { allowedHosts: ['127.0.0.0/8'] }, refuse: 'private network' },
  'allowlisted narrow CIDR': { url: 'https://192.168.1.200/', policy: { allowedHosts: ['192.168.1.128/25'] }, pass: '192.168.1.200' },
  'just outside allowlisted narrow CIDR': { url: 'https://192.168.1.127/', policy: { allowedHosts: ['192.168.1.128/25'] }, refuse: 'private network' },
  'allowlisted IPv6 CIDR': { url: 'https://[::1]/', policy: { allowedHosts: ['::1/128'] }, pass: '[::1]' },
  'allowlisted IPv6 CIDR, long spelling': { url: 'https://[0:0::0:1]/', policy: { allowedHosts: ['::1/128'] }, pass: '[::1]' },
  'IPv6 CIDR does not cover IPv4 loopback': { url: 'https://127.0.0.1/', policy: { allowedHosts: ['::1/128'] }, refuse: 'loopback' },
  'allowlisted bare IP': { url: 'https://169.254.169.254/', policy: { allowedHosts: ['169.254.169.254'] }, pass: '169.254.169.254' },
};

describe('checkEndpointUrl', () => {
  for (const [name, c] of Object.entries(urlCases)) {
    it(name, () => {
      const verdict = checkEndpointUrl(c.url, policy(c.policy));
      if ('pass' in c) {
        assert.ok(verdict.ok, `expected ${c.url} to pass, got: ${verdict.ok ? '' : verdict.reason}`);
        assert.ok(verdict.url instanceof URL);
        assert.equal(verdict.url.hostname, c.pass);
      } else {
        assert.equal(verdict.ok, false, `expected ${c.url} to be refused`);
        assert.ok(!verdict.ok);
        assert.ok(verdict.reason.includes(c.refuse), `reason ${JSON.stringify(verdict.reason)} should mention ${JSON.stringify(c.refuse)}`);
      }
    });
  }

  it('has a usable default policy', () => {
    assert.deepEqual({ ...defaultUrlPolicy, allowedHosts: [...defaultUrlPolicy.allowedHosts] }, { allowHttp: false, allowedHosts: [], maxLength: 2048 });
  });

  it('returns the parsed, normalised URL', () => {
    const verdict = checkEndpointUrl('HTTPS://Example.COM:443/a/../hook?q=1', defaultUrlPolicy);
    assert.ok(verdict.ok);
    assert.equal(verdict.url.href, 'https://example.com/hook?q=1');
  });

  it('throws on a malformed allowlist entry rather than silently ignoring it', () => {
    assert.throws(() => checkEndpointUrl('https://example.com/', policy({ allowedHosts: ['10.0.0.0/33'] })), /allowedHosts/);
    assert.throws(() => checkEndpointUrl('https://example.com/', policy({ allowedHosts: ['not-an-ip/8'] })), /allowedHosts/);
  });
});

type ResolvedCase = { address: string; host: string; policy?: Partial<UrlPolicy> } & ({ pass: true } | { refuse: string });

const resolvedCases: Record<string, ResolvedCase> = {
  'public IPv4': { address: '93.184.216.34', host: 'example.com', pass: true },
  'public IPv6': { address: '2606:4700::1111', host: 'example.com', pass: true },
  'rebinding to loopback': { address: '127.0.0.1', host: 'evil.example', refuse: 'host "evil.example" resolved to a loopback address (127.0.0.1)' },
  'rebinding to metadata': { address: '169.254.169.254', host: 'evil.example', refuse: 'cloud metadata' },
  'rebinding to private': { address: '10.1.2.3', host: 'evil.example', refuse: 'private network' },
  'rebinding to IPv6 loopback': { address: '::1', host: 'evil.example', refuse: 'loopback address (::1)' },
  'rebinding to IPv4-mapped dotted': { address: '::ffff:127.0.0.1', host: 'evil.example', refuse: 'IPv4-mapped form of 127.0.0.1' },
  'rebinding to IPv4-mapped hex': { address: '::ffff:a00:1', host: 'evil.example', refuse: 'private network' },
  'rebinding to NAT64 internal': { address: '64:ff9b::192.168.0.1', host: 'evil.example', refuse: 'NAT64 form of 192.168.0.1' },
  'rebinding to link-local with zone id': { address: 'fe80::1%eth0', host: 'evil.example', refuse: 'link-local' },
  'rebinding to AWS IPv6 metadata': { address: 'fd00:ec2::254', host: 'evil.example', refuse: 'cloud metadata' },
  'not an IP at all': { address: 'localhost', host: 'evil.example', refuse: 'not an IP address' },
  'non-canonical IPv4 text is not trusted': { address: '0177.0.0.1', host: 'evil.example', refuse: 'not an IP address' },
  'allowlisted CIDR': { address: '10.1.2.3', host: 'svc.example', policy: { allowedHosts: ['10.0.0.0/8'] }, pass: true },
  'allowlisted IPv4 CIDR covers mapped form': { address: '::ffff:10.1.2.3', host: 'svc.example', policy: { allowedHosts: ['10.0.0.0/8'] }, pass: true },
  'outside allowlisted CIDR': { address: '172.16.0.1', host: 'svc.example', policy: { allowedHosts: ['10.0.0.0/8'] }, refuse: 'private network' },
  'allowlisted IPv6 CIDR': { address: '::1', host: 'svc.example', policy: { allowedHosts: ['::1/128'] }, pass: true },
  'allowlisted name equal to host': { address: '10.9.9.9', host: 'my.internal', policy: { allowedHosts: ['my.internal'] }, pass: true },
  'allowlisted name, host upper case with trailing dot': { address: '10.9.9.9', host: 'My.Internal.', policy: { allowedHosts: ['my.internal'] }, pass: true },
  'allowlisted name is a different host': { address: '10.9.9.9', host: 'evil.example', policy: { allowedHosts: ['my.internal'] }, refuse: 'private network' },
};

describe('checkResolvedAddress', () => {
  for (const [name, c] of Object.entries(resolvedCases)) {
    it(name, () => {
      const verdict = checkResolvedAddress(c.address, c.host, policy(c.policy));
      if ('pass' in c) {
        assert.deepEqual(verdict, { ok: true });
      } else {
        assert.equal(verdict.ok, false);
        assert.ok(!verdict.ok);
        assert.ok(verdict.reason.includes(c.refuse), `reason ${JSON.stringify(verdict.reason)} should mention ${JSON.stringify(c.refuse)}`);
      }
    });
  }
});

const classifyCases: ReadonlyArray<readonly [string, AddressClass | undefined]> = [
  ['8.8.8.8', undefined],
  ['93.184.216.34', undefined],
  ['0.0.0.0', 'unspecified'],
  ['0.255.255.255', 'this-network'],
  ['10.255.255.255', 'private'],
  ['100.64.0.0', 'cgnat'],
  ['100.127.255.255', 'cgnat'],
  ['100.128.0.0', undefined],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.255', 'loopback'],
  ['169.254.169.254', 'metadata'],
  ['169.254.169.253', 'link-local'],
  ['172.15.255.255', undefined],
  ['172.16.0.0', 'private'],
  ['172.31.255.255', 'private'],
  ['172.32.0.0', undefined],
  ['192.0.0.8', 'protocol-assignment'],
  ['192.0.2.1', 'documentation'],
  ['192.168.0.1', 'private'],
  ['198.17.255.255', undefined],
  ['198.18.0.0', 'benchmarking'],
  ['198.20.0.0', undefined],
  ['198.51.100.1', 'documentation'],
  ['203.0.113.1', 'documentation'],
  ['224.0.0.0', 'multicast'],
  ['239.255.255.255', 'multicast'],
  ['240.0.0.0', 'reserved'],
  ['255.255.255.254', 'reserved'],
  ['255.255.255.255', 'broadcast'],
  ['::', 'unspecified'],
  ['::1', 'loopback'],
  ['[::1]', 'loopback'],
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['::ffff:8.8.8.8', undefined],
  ['::ffff:a9fe:a9fe', 'metadata'],
  ['::7f00:1', 'ipv4-compatible'],
  ['64:ff9b::10.0.0.1', 'private'],
  ['64:ff9b::808:808', undefined],
  ['2002:a9fe:a9fe::1', 'metadata'],
  ['2002:808:808::1', undefined],
  ['fe80::1', 'link-local'],
  ['fe80::1%eth0', 'link-local'],
  ['fec0::1', 'site-local'],
  ['fc00::1', 'unique-local'],
  ['fdff:ffff::1', 'unique-local'],
  ['fd00:ec2::254', 'metadata'],
  ['ff02::1', 'multicast'],
  ['2001:db8:1::1', 'documentation'],
  ['2001:2::1', 'benchmarking'],
  ['100::1', 'reserved'],
  ['4000::1', 'reserved'],
  ['2606:4700::1111', undefined],
  ['2001:4860:4860::8888', undefined],
];

describe('classifyAddress', () => {
  for (const [ip, expected] of classifyCases) {
    it(`${ip} -> ${expected ?? 'public'}`, () => {
      assert.equal(classifyAddress(ip), expected);
    });
  }

  it('throws on text that is not an IP address instead of calling it public', () => {
    assert.throws(() => classifyAddress('example.com'), TypeError);
    assert.throws(() => classifyAddress('0177.0.0.1'), TypeError);
    assert.throws(() => classifyAddress(''), TypeError);
  });
});

describe('checkEndpointResolution', () => {
  const dns: Record<string, string[]> = {
    '127.0.0.1.nip.io': ['127.0.0.1'],
    '169.254.169.254.nip.io': ['169.254.169.254'],
    'both.example': ['10.0.0.1', '::1'],
    'mixed.example': ['10.0.0.1', '93.184.216.34'],
    'svc.example': ['10.1.2.3'],
    'public.example': ['2606:4700::1111'],
  };
  const asked: string[] = [];
  const resolve = async (host: string): Promise<string[]> => {
    asked.push(host);
    const addresses = dns[host];
    if (!addresses) throw new Error(`getaddrinfo ENOTFOUND ${host}`);
    return addresses;
  };
  const check = (url: string, overrides: Partial<UrlPolicy> = {}, resolver = resolve) => checkEndpointResolution(new URL(url), policy(overrides), resolver, 1_000);

  it('refuses a name whose every address is internal, with the connect-time message', async () => {
    assert.deepEqual(await check('https://127.0.0.1.nip.io/'), { ok: false, reason: 'host "127.0.0.1.nip.io" resolved to a loopback address (127.0.0.1)' });
    assert.deepEqual(await check('https://169.254.169.254.nip.io/x'), { ok: false, reason: 'host "169.254.169.254.nip.io" resolved to a cloud metadata service address (169.254.169.254)' });
    assert.deepEqual(await check('https://both.example/'), { ok: false, reason: 'host "both.example" resolved to a private network address (10.0.0.1)' });
  });

  it('accepts a name with one public address, a name that does not resolve, and a public IPv6 answer', async () => {
    assert.deepEqual(await check('https://mixed.example/'), { ok: true });
    assert.deepEqual(await check('https://nowhere.example/'), { ok: true });
    assert.deepEqual(await check('https://public.example/'), { ok: true });
  });

  it('looks up neither IP literals nor allow-listed names; allow-listed ranges pass', async () => {
    asked.length = 0;
    assert.deepEqual(await check('https://93.184.216.34/'), { ok: true });
    assert.deepEqual(await check('https://[2606:4700::1111]/'), { ok: true });
    assert.deepEqual(await check('https://SVC.example./', { allowedHosts: ['svc.example'] }), { ok: true });
    assert.deepEqual(asked, []);
    assert.deepEqual(await check('https://svc.example/', { allowedHosts: ['10.0.0.0/8'] }), { ok: true });
    assert.deepEqual(asked, ['svc.example']);
  });

  it('counts a lookup that fails at once or never answers as unresolvable', async () => {
    const never = () => new Promise<string[]>(() => {});
    assert.deepEqual(await checkEndpointResolution(new URL('https://slow.example/'), policy(), never, 10), { ok: true });
    const throwsAtOnce = (): Promise<string[]> => {
      throw new Error('resolver broke');
    };
    assert.deepEqual(await check('https://127.0.0.1.nip.io/', {}, throwsAtOnce), { ok: true });
  });
});
