// Endpoint URL policy for customer webhook endpoints: stops customers from pointing
// deliveries at our own network (SSRF), both when a URL is registered and at connect time.
import { isIP } from 'node:net';

export interface UrlPolicy {
  /** Allow plain http:// URLs (https is always allowed). Default false. */
  allowHttp: boolean;
  /** Exceptions to the address rules: exact host names (lower case, e.g. "localhost", "my.internal") or CIDR ranges ("127.0.0.0/8", "10.0.0.0/8", "::1/128"). A URL whose host matches a name, or whose IP literal / resolved address falls in a range, is allowed even though it is internal. */
  allowedHosts: readonly string[];
  /** Max URL length in characters; default 2048. */
  maxLength: number;
}

export const defaultUrlPolicy: UrlPolicy = Object.freeze({
  allowHttp: false,
  allowedHosts: Object.freeze([]) as readonly string[],
  maxLength: 2048,
});

export type UrlVerdict = { ok: true; url: URL } | { ok: false; reason: string };

/**
 * Special-purpose ranges. IPv6 forms that embed an IPv4 address (IPv4-mapped,
 * NAT64 64:ff9b::/96, 6to4 2002::/16) are reported with the class of the
 * embedded IPv4 address, because that is where traffic ends up.
 */
export type AddressClass =
  | 'unspecified'
  | 'this-network'
  | 'loopback'
  | 'private'
  | 'cgnat'
  | 'link-local'
  | 'metadata'
  | 'protocol-assignment'
  | 'documentation'
  | 'benchmarking'
  | 'multicast'
  | 'reserved'
  | 'broadcast'
  | 'unique-local'
  | 'site-local'
  | 'ipv4-compatible';

const CLASS_PHRASE: Record<AddressClass, string> = {
  unspecified: 'an unspecified address',
  'this-network': 'a "this network" (0.0.0.0/8) address',
  loopback: 'a loopback address',
  private: 'a private network address',
  cgnat: 'a carrier-grade NAT (100.64.0.0/10) address',
  'link-local': 'a link-local address',
  metadata: 'a cloud metadata service address',
  'protocol-assignment': 'an IETF protocol assignment (192.0.0.0/24) address',
  documentation: 'a documentation-only address',
  benchmarking: 'a benchmarking address',
  multicast: 'a multicast address',
  reserved: 'a reserved address',
  broadcast: 'the broadcast address',
  'unique-local': 'a unique-local (private IPv6) address',
  'site-local': 'a site-local address',
  'ipv4-compatible': 'a deprecated IPv4-compatible IPv6 address',
};

// ---------------------------------------------------------------------------
// IP parsing. Everything is compared in the 128-bit IPv6 space, IPv4 as
// ::ffff:a.b.c.d, so an IPv4 allowlist range also covers the IPv4-mapped
// spelling of the same destination, and embedded IPv4 forms need the raw bits anyway.

type ParsedIp = { version: 4; v4: number } | { version: 6; v6: bigint };

const MAPPED_PREFIX = 0xffffn << 32n;
const V4_MASK = 0xffffffffn;

function parseIPv4(text: string): number | undefined {
  if (isIP(text) !== 4) return undefined;
  return text.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

function parseIPv6(text: string): bigint | undefined {
  if (isIP(text) !== 6) return undefined;
  let body = text;
  const lastColon = body.lastIndexOf(':');
  const last = body.slice(lastColon + 1);
  if (last.includes('.')) {
    // Rewrite a trailing dotted quad as two hex groups so one parser handles both spellings.
    const quad = parseIPv4(last);
    if (quad === undefined) return undefined;
    body = `${body.slice(0, lastColon + 1)}${Math.floor(quad / 0x10000).toString(16)}:${(quad % 0x10000).toString(16)}`;
  }
  const toGroups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const halves = body.split('::');
  let groups: number[];
  if (halves.length === 2) {
    const head = toGroups(halves[0]);
    const rest = toGroups(halves[1]);
    groups = [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
  } else {
    groups = toGroups(body);
  }
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) return undefined;
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

/** Accepts plain or bracketed IP text, with an optional IPv6 zone id. */
function parseIp(text: string): ParsedIp | undefined {
  let t = text.trim();
  if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
  const v4 = parseIPv4(t);
  if (v4 !== undefined) return { version: 4, v4 };
  const zone = t.indexOf('%');
  if (zone !== -1) t = t.slice(0, zone);
  const v6 = parseIPv6(t);
  return v6 === undefined ? undefined : { version: 6, v6 };
}

function as128(ip: ParsedIp): bigint {
  return ip.version === 4 ? MAPPED_PREFIX | BigInt(ip.v4) : ip.v6;
}

function v4ToText(v4: number): string {
  return [v4 >>> 24, (v4 >>> 16) & 0xff, (v4 >>> 8) & 0xff, v4 & 0xff].join('.');
}

// ---------------------------------------------------------------------------
// Classification.

function v4(text: string): number {
  const n = parseIPv4(text);
  if (n === undefined) throw new Error(`bad IPv4 constant ${text}`);
  return n;
}

// First match wins, so more specific entries come first.
const V4_RANGES: ReadonlyArray<readonly [number, number, AddressClass]> = [
  [v4('0.0.0.0'), 32, 'unspecified'],
  [v4('0.0.0.0'), 8, 'this-network'],
  [v4('10.0.0.0'), 8, 'private'],
  [v4('100.64.0.0'), 10, 'cgnat'],
  [v4('127.0.0.0'), 8, 'loopback'],
  [v4('169.254.169.254'), 32, 'metadata'],
  [v4('169.254.0.0'), 16, 'link-local'],
  [v4('172.16.0.0'), 12, 'private'],
  [v4('192.0.0.0'), 24, 'protocol-assignment'],
  [v4('192.0.2.0'), 24, 'documentation'],
  [v4('192.168.0.0'), 16, 'private'],
  [v4('198.18.0.0'), 15, 'benchmarking'],
  [v4('198.51.100.0'), 24, 'documentation'],
  [v4('203.0.113.0'), 24, 'documentation'],
  [v4('224.0.0.0'), 4, 'multicast'],
  [v4('255.255.255.255'), 32, 'broadcast'],
  [v4('240.0.0.0'), 4, 'reserved'],
];

function inV4(addr: number, base: number, bits: number): boolean {
  const size = 2 ** (32 - bits);
  return Math.floor(addr / size) === Math.floor(base / size);
}

function classifyV4(addr: number): AddressClass | undefined {
  for (const [base, bits, cls] of V4_RANGES) if (inV4(addr, base, bits)) return cls;
  return undefined;
}

function v6(text: string): bigint {
  const n = parseIPv6(text);
  if (n === undefined) throw new Error(`bad IPv6 constant ${text}`);
  return n;
}

function inV6(addr: bigint, base: bigint, bits: number): boolean {
  const shift = BigInt(128 - bits);
  return addr >> shift === base >> shift;
}

const NAT64 = v6('64:ff9b::');
const SIX_TO_FOUR = v6('2002::');
const GLOBAL_UNICAST = v6('2000::');

const V6_RANGES: ReadonlyArray<readonly [bigint, number, AddressClass]> = [
  [v6('fd00:ec2::254'), 128, 'metadata'],
  [v6('fe80::'), 10, 'link-local'],
  [v6('fec0::'), 10, 'site-local'],
  [v6('fc00::'), 7, 'unique-local'],
  [v6('ff00::'), 8, 'multicast'],
  [v6('2001:db8::'), 32, 'documentation'],
  [v6('3fff::'), 20, 'documentation'],
  [v6('2001:2::'), 48, 'benchmarking'],
];

interface Classification {
  cls: AddressClass;
  /** Set when an IPv6 address was judged by the IPv4 address it embeds. */
  embedded?: { form: string; v4: string };
}

function embeddedVerdict(form: string, addr: number): Classification | undefined {
  const cls = classifyV4(addr);
  return cls === undefined ? undefined : { cls, embedded: { form, v4: v4ToText(addr) } };
}

function classifyParsed(ip: ParsedIp): Classification | undefined {
  if (ip.version === 4) {
    const cls = classifyV4(ip.v4);
    return cls === undefined ? undefined : { cls };
  }
  const a = ip.v6;
  if (a === 0n) return { cls: 'unspecified' };
  if (a === 1n) return { cls: 'loopback' };
  const low32 = Number(a & V4_MASK);
  if (inV6(a, MAPPED_PREFIX, 96)) return embeddedVerdict('an IPv4-mapped form of', low32);
  if (inV6(a, 0n, 96)) return { cls: 'ipv4-compatible' };
  if (inV6(a, NAT64, 96)) return embeddedVerdict('a NAT64 form of', low32);
  if (inV6(a, SIX_TO_FOUR, 16)) return embeddedVerdict('a 6to4 form of', Number((a >> 80n) & V4_MASK));
  for (const [base, bits, cls] of V6_RANGES) if (inV6(a, base, bits)) return { cls };
  // Only 2000::/3 is allocated for global unicast; anything else cannot be a customer's server.
  if (!inV6(a, GLOBAL_UNICAST, 3)) return { cls: 'reserved' };
  return undefined;
}

/**
 * What kind of special-purpose range an IP address (v4 or v6 text) is in, or
 * undefined for an ordinary public address. Throws TypeError for text that is
 * not an IP address, so a caller can never mistake garbage for "public".
 */
export function classifyAddress(ip: string): AddressClass | undefined {
  const parsed = parseIp(ip);
  if (parsed === undefined) throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
  return classifyParsed(parsed)?.cls;
}

// ---------------------------------------------------------------------------
// Allowlist.

interface Allowlist {
  names: ReadonlySet<string>;
  ranges: ReadonlyArray<readonly [bigint, number]>;
}

function normaliseName(host: string): string {
  const lower = host.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

function parseAllowlist(entries: readonly string[]): Allowlist {
  const names = new Set<string>();
  const ranges: Array<readonly [bigint, number]> = [];
  for (const entry of entries) {
    const slash = entry.indexOf('/');
    const addrText = slash === -1 ? entry : entry.slice(0, slash);
    const ip = parseIp(addrText);
    if (ip === undefined) {
      if (slash !== -1 || entry.trim() === '') throw new TypeError(`invalid allowedHosts entry ${JSON.stringify(entry)}`);
      names.add(normaliseName(entry.trim()));
      continue;
    }
    const max = ip.version === 4 ? 32 : 128;
    const prefixText = slash === -1 ? String(max) : entry.slice(slash + 1);
    const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
    if (!(prefix >= 0 && prefix <= max)) throw new TypeError(`invalid allowedHosts entry ${JSON.stringify(entry)}`);
    ranges.push([as128(ip), ip.version === 4 ? prefix + 96 : prefix]);
  }
  return { names, ranges };
}

function rangeAllows(list: Allowlist, ip: ParsedIp): boolean {
  const a = as128(ip);
  return list.ranges.some(([base, bits]) => inV6(a, base, bits));
}

// ---------------------------------------------------------------------------
// Host names.

const INTERNAL_SUFFIXES = ['localhost', 'local', 'internal', 'home.arpa'];

function internalNameReason(name: string): string | undefined {
  const shown = JSON.stringify(name);
  if (name.split('.').some((label) => label === '')) return `url host ${shown} is not a valid host name (empty label)`;
  for (const suffix of INTERNAL_SUFFIXES) {
    if (name === suffix || name.endsWith('.' + suffix)) return `url host ${shown} is internal (${suffix === 'localhost' ? 'localhost' : `.${suffix}`} names are not allowed)`;
  }
  if (!name.includes('.')) return `url host ${shown} is internal (single-label names are not allowed; use a fully qualified domain name)`;
  return undefined;
}

function addressReason(prefix: string, shown: string, c: Classification): string {
  const detail = c.embedded ? `${shown}, ${c.embedded.form} ${c.embedded.v4}` : shown;
  return `${prefix} ${CLASS_PHRASE[c.cls]} (${detail})`;
}

// ---------------------------------------------------------------------------
// Public checks.

/** Checks a URL a customer registers as a webhook endpoint. */
export function checkEndpointUrl(raw: string, policy: UrlPolicy): UrlVerdict {
  if (typeof raw !== 'string' || raw.trim() === '') return { ok: false, reason: 'url is empty' };
  if (raw.length > policy.maxLength) return { ok: false, reason: `url is longer than ${policy.maxLength} characters` };
  const url = URL.parse(raw);
  if (url === null) return { ok: false, reason: 'url is not a valid absolute URL (expected e.g. https://example.com/webhook)' };
  if (url.href.length > policy.maxLength) return { ok: false, reason: `url is longer than ${policy.maxLength} characters` };

  if (url.protocol !== 'https:' && !(policy.allowHttp && url.protocol === 'http:')) {
    const wanted = policy.allowHttp ? 'https or http' : 'https';
    return { ok: false, reason: `url must use ${wanted} (got ${url.protocol.slice(0, -1)})` };
  }
  if (url.username !== '' || url.password !== '') return { ok: false, reason: 'url must not contain a user name or password' };
  // url.hash is '' for a bare trailing '#', so look at the serialised form.
  if (url.href.includes('#')) return { ok: false, reason: 'url must not contain a fragment (#...)' };

  const allow = parseAllowlist(policy.allowedHosts);
  const hostname = url.hostname;
  const ip = parseIp(hostname);
  if (ip !== undefined) {
    if (rangeAllows(allow, ip)) return { ok: true, url };
    const c = classifyParsed(ip);
    const shown = ip.version === 6 ? hostname.slice(1, -1) : hostname;
    if (c !== undefined) return { ok: false, reason: addressReason('url points to', shown, c) };
    return { ok: true, url };
  }
  if (hostname.startsWith('[')) return { ok: false, reason: `url host ${hostname} is not a valid IP address` };

  const name = normaliseName(hostname);
  if (allow.names.has(name)) return { ok: true, url };
  const reason = internalNameReason(name);
  return reason === undefined ? { ok: true, url } : { ok: false, reason };
}

/** Checks the address a host name resolved to, at connect time (defence against DNS rebinding). `host` is the name that was resolved (for allowedHosts name matching). */
export function checkResolvedAddress(address: string, host: string, policy: UrlPolicy): { ok: true } | { ok: false; reason: string } {
  const ip = parseIp(address);
  if (ip === undefined) return { ok: false, reason: `host ${JSON.stringify(host)} resolved to ${JSON.stringify(address)}, which is not an IP address` };
  const allow = parseAllowlist(policy.allowedHosts);
  if (allow.names.has(normaliseName(host)) || rangeAllows(allow, ip)) return { ok: true };
  const c = classifyParsed(ip);
  if (c === undefined) return { ok: true };
  return { ok: false, reason: addressReason(`host ${JSON.stringify(host)} resolved to`, address, c) };
}

/** Resolves a host name to every address it has (IPv4 or IPv6 text). Passed in, so this module needs no DNS. */
export type HostResolver = (host: string) => Promise<readonly string[]>;

/**
 * Checks at registration what an accepted URL's host name resolves to: refused when EVERY address is
 * internal (e.g. 127.0.0.1.nip.io), since nothing could ever be delivered there. A name that does not
 * resolve, or not within timeoutMs, is accepted: DNS changes, and the connect-time check
 * (checkResolvedAddress) stays the authority. IP literals and allow-listed names need no lookup.
 */
export async function checkEndpointResolution(url: URL, policy: UrlPolicy, resolve: HostResolver, timeoutMs: number): Promise<{ ok: true } | { ok: false; reason: string }> {
  const hostname = url.hostname;
  if (hostname.startsWith('[') || parseIp(hostname) !== undefined) return { ok: true };
  const name = normaliseName(hostname);
  if (parseAllowlist(policy.allowedHosts).names.has(name)) return { ok: true };
  const addresses = await lookupWithin(resolve, hostname, timeoutMs);
  if (addresses === undefined || addresses.length === 0) return { ok: true };
  let refusal: { ok: false; reason: string } | undefined;
  for (const address of addresses) {
    const verdict = checkResolvedAddress(address, name, policy);
    if (verdict.ok) return verdict;
    refusal ??= verdict;
  }
  return refusal!;
}

/** The resolver's answer, or undefined when it failed or took longer than timeoutMs. */
async function lookupWithin(resolve: HostResolver, host: string, timeoutMs: number): Promise<readonly string[] | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((done) => (timer = setTimeout(() => done(undefined), timeoutMs)));
  try {
    return await Promise.race([Promise.resolve().then(() => resolve(host)), timeout]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
