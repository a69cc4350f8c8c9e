/**
 * A compact set of string keys with an expiry each, for the high-cardinality rule kinds of the revocation index
 * (token `jti`, session `sid`, family `fid`, and the allowlist's `jti`s): ~25 bytes per entry at 1M entries, where a
 * `Map<string, number>` costs ~100 (the key string it keeps alive, the entry, the boxed expiry).
 *
 * **Fingerprints, not keys.** A key is stored as a 64-bit fingerprint of its UTF-16 code units (see
 * {@link fingerprintKey}); the string itself is not kept. Two distinct keys with the same fingerprint are one entry,
 * so a lookup of a key that was never added answers "present" with probability ≈ n / 2^64 for n entries (≈ 5·10⁻¹⁴
 * at 1M). In the revocation index that error is always in the safe direction for a revocation rule (a valid token
 * wrongly rejected, never a revoked one accepted). Keys are `jti`/`sid`/`fid` values minted by revokd (UUIDs,
 * 128-bit random base64url) inside signed tokens, so an attacker cannot choose them to provoke collisions; the index
 * keeps one table per kind, so a `jti` cannot collide with a `sid`.
 *
 * **Expiries in whole seconds.** An entry keeps `ceil(expiresAtMs / 1000)` seconds since the epoch in 32 bits
 * (valid to 2106): it may live up to 999 ms longer than asked, never shorter — the safe direction for a
 * revocation. (For an `allow` entry that means a token may stay allowed for up to 999 ms past its entry's expiry; the
 * server sets that expiry to the token's `exp` plus the clock skew, whole seconds in practice, so nothing is
 * rounded there, and the verifier enforces `exp` itself.) An expiry that is not a number or at or before the epoch
 * is stored as 1 s (already expired: never live, dropped by the next prune); one beyond 2106 as the largest value.
 *
 * **Layout.** Open addressing with linear probing in one `Uint32Array`, three words per slot (fingerprint low word,
 * fingerprint high word, expiry in seconds; expiry 0 marks an empty slot), interleaved so a probe touches one cache
 * line instead of three arrays. The home slot is the low word masked by the power-of-two capacity. The load factor
 * stays ≤ 0.7: the table doubles before an insert would exceed it, and halves (or more) when a prune leaves it
 * below a quarter of that. At 1M entries the capacity is 2^21 slots: 12 B × 2^21 ≈ 25 B per entry.
 *
 * **Deletion by backward shift**, no tombstones: removing an entry moves later members of its probe run back into
 * the hole whenever that does not carry them before their home slot, so every probe chain stays intact and lookups
 * never wade through dead slots. {@link FingerprintTable.prune} sweeps the table once, deleting in place.
 *
 * Not thread-safe, no I/O, no clock: callers pass `nowMs`. An entry whose expiry has passed is absent to every
 * lookup even before it is pruned.
 */

/** Words per slot: fingerprint low word, fingerprint high word, expiry in seconds (0: empty slot). */
const STRIDE = 3;
const HI = 1;
const EXP = 2;
/** Growth threshold: the table doubles before the number of entries would exceed this fraction of the slots. */
const MAX_LOAD = 0.7;
const MIN_CAPACITY = 16;
const MAX_EXPIRY_S = 0xffff_ffff;

/** The fingerprint of the last key hashed by {@link hashKey} (module scratch: no allocation per lookup). */
let keyLo = 0;
let keyHi = 0;

/**
 * Hashes `key` into {@link keyLo}/{@link keyHi}: cyrb53's two-lane construction (bryc, public domain) over the
 * UTF-16 code units, keeping all 64 bits of both lanes ("cyrb64"). Each code unit is folded into two 32-bit states
 * with different odd multipliers (`Math.imul`), then the lanes are avalanched and cross-mixed.
 *
 * This is a hash-table hash, fast and well distributed, NOT a cryptographic hash: it offers no resistance to
 * someone who chooses keys to collide. The index only ever hashes identifiers revokd minted itself (see the module
 * comment), where it behaves as a random 64-bit function.
 */
function hashKey(key: string): void {
  let h1 = 0xdeadbeef ^ key.length;
  let h2 = 0x41c6ce57 ^ key.length;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  keyLo = h1 >>> 0;
  keyHi = h2 >>> 0;
}

/** The 64-bit fingerprint of `key` as `[high word, low word]` (unsigned 32-bit integers); for tests and tools. */
export function fingerprintKey(key: string): [hi: number, lo: number] {
  hashKey(key);
  return [keyHi, keyLo];
}

/** `expiresAtMs` as stored: whole seconds since the epoch, rounded up, clamped to [1, 2^32 − 1]. */
export function expirySeconds(expiresAtMs: number): number {
  const seconds = Math.ceil(expiresAtMs / 1000);
  if (!(seconds >= 1)) return 1; // also NaN
  return Math.min(seconds, MAX_EXPIRY_S);
}

/** The smallest power-of-two capacity (≥ 16) that holds `count` entries within the load factor. */
function capacityFor(count: number): number {
  let capacity = MIN_CAPACITY;
  while (count > Math.floor(capacity * MAX_LOAD)) capacity *= 2;
  return capacity;
}

export class FingerprintTable {
  #slots: Uint32Array;
  /** capacity − 1 (capacity is a power of two). */
  #mask: number;
  /** Most entries before the table must grow: floor(capacity × MAX_LOAD). */
  #limit: number;
  #size = 0;

  /** `expectedEntries`: how many entries to make room for up front (the table grows as needed anyway). */
  constructor(expectedEntries = 0) {
    const capacity = capacityFor(expectedEntries);
    this.#slots = new Uint32Array(capacity * STRIDE);
    this.#mask = capacity - 1;
    this.#limit = Math.floor(capacity * MAX_LOAD);
  }

  /** Number of entries, expired ones not yet pruned included. */
  get size(): number {
    return this.#size;
  }

  /** Number of slots (a power of two; the table holds at most 70 % of it). */
  get capacity(): number {
    return this.#mask + 1;
  }

  /** Adds `key`, or extends its expiry when it is present: an entry keeps the latest expiry it was given. */
  merge(key: string, expiresAtMs: number): void {
    hashKey(key);
    this.mergeFingerprint(keyHi, keyLo, expiresAtMs);
  }

  /** Whether `key` (or a key with the same fingerprint) is present with an expiry after `nowMs`. */
  isLive(key: string, nowMs: number): boolean {
    if (this.#size === 0) return false;
    hashKey(key);
    return this.isLiveFingerprint(keyHi, keyLo, nowMs);
  }

  /** The stored expiry of `key` (rounded up to a whole second) in ms, or undefined when absent. Expired entries count. */
  expiresAtMs(key: string): number | undefined {
    hashKey(key);
    return this.expiresAtMsOfFingerprint(keyHi, keyLo);
  }

  /** {@link merge} for a fingerprint given as two unsigned 32-bit words. */
  mergeFingerprint(hi: number, lo: number, expiresAtMs: number): void {
    const expiry = expirySeconds(expiresAtMs);
    const slot = this.#find(hi, lo);
    if (slot >= 0) {
      const at = slot * STRIDE + EXP;
      if (this.#slots[at]! < expiry) this.#slots[at] = expiry;
      return;
    }
    if (this.#size >= this.#limit) this.#resize((this.#mask + 1) * 2);
    this.#place(this.#slots, this.#mask, lo >>> 0, hi >>> 0, expiry);
    this.#size += 1;
  }

  /** {@link isLive} for a fingerprint given as two unsigned 32-bit words. */
  isLiveFingerprint(hi: number, lo: number, nowMs: number): boolean {
    const slot = this.#find(hi, lo);
    return slot >= 0 && this.#slots[slot * STRIDE + EXP]! * 1000 > nowMs;
  }

  /** {@link expiresAtMs} for a fingerprint given as two unsigned 32-bit words. */
  expiresAtMsOfFingerprint(hi: number, lo: number): number | undefined {
    const slot = this.#find(hi, lo);
    return slot >= 0 ? this.#slots[slot * STRIDE + EXP]! * 1000 : undefined;
  }

  /** Removes `key` (any key with its fingerprint) if present; returns whether it was. */
  delete(key: string): boolean {
    hashKey(key);
    return this.deleteFingerprint(keyHi, keyLo);
  }

  /** {@link delete} for a fingerprint given as two unsigned 32-bit words. */
  deleteFingerprint(hi: number, lo: number): boolean {
    const slot = this.#find(hi, lo);
    if (slot < 0) return false;
    this.#deleteAt(slot);
    return true;
  }

  /**
   * Drops every entry whose (rounded-up) expiry is at or before `nowMs`; returns how many. One sweep over the slots,
   * deleting in place: a backward shift only moves an entry into the hole being examined or into a slot still ahead
   * of the sweep (or, past the wrap-around, an entry already kept into a slot already passed), so every entry is
   * examined once. Shrinks the table when it is left less than a quarter full (of the load factor).
   */
  prune(nowMs: number): number {
    if (this.#size === 0) return 0;
    const slots = this.#slots;
    const capacity = this.#mask + 1;
    let dropped = 0;
    for (let i = 0; i < capacity; ) {
      const expiry = slots[i * STRIDE + EXP]!;
      if (expiry !== 0 && expiry * 1000 <= nowMs) {
        this.#deleteAt(i);
        dropped += 1;
        // Slot i may now hold an entry shifted back into it: examine it again.
      } else {
        i += 1;
      }
    }
    if (capacity > MIN_CAPACITY && this.#size < this.#limit / 4) this.#resize(capacityFor(this.#size * 2));
    return dropped;
  }

  /** Removes every entry and returns to the smallest capacity (releasing the memory). */
  clear(): void {
    this.#slots = new Uint32Array(MIN_CAPACITY * STRIDE);
    this.#mask = MIN_CAPACITY - 1;
    this.#limit = Math.floor(MIN_CAPACITY * MAX_LOAD);
    this.#size = 0;
  }

  /** Grows the table now so that `count` entries in all fit without a further resize. */
  reserve(count: number): void {
    const capacity = capacityFor(count);
    if (capacity > this.#mask + 1) this.#resize(capacity);
  }

  /** The slot holding fingerprint (hi, lo), or −1. */
  #find(hi: number, lo: number): number {
    const slots = this.#slots;
    const mask = this.#mask;
    lo >>>= 0;
    hi >>>= 0;
    let slot = lo & mask;
    for (;;) {
      const at = slot * STRIDE;
      if (slots[at + EXP] === 0) return -1;
      if (slots[at] === lo && slots[at + HI] === hi) return slot;
      slot = (slot + 1) & mask;
    }
  }

  /** Writes an entry known to be absent into the first empty slot of its probe run. */
  #place(slots: Uint32Array, mask: number, lo: number, hi: number, expiry: number): void {
    let slot = lo & mask;
    while (slots[slot * STRIDE + EXP] !== 0) slot = (slot + 1) & mask;
    const at = slot * STRIDE;
    slots[at] = lo;
    slots[at + HI] = hi;
    slots[at + EXP] = expiry;
  }

  /**
   * Empties `hole` and repairs the probe run after it (backward-shift deletion): each following entry up to the
   * next empty slot moves back into the hole unless its home slot lies cyclically in (hole, its slot], i.e. unless
   * the move would put it before its home, where a lookup starting at home would not find it.
   */
  #deleteAt(hole: number): void {
    const slots = this.#slots;
    const mask = this.#mask;
    let slot = hole;
    for (;;) {
      slot = (slot + 1) & mask;
      const at = slot * STRIDE;
      if (slots[at + EXP] === 0) break;
      const home = slots[at]! & mask;
      const stays = hole <= slot ? hole < home && home <= slot : hole < home || home <= slot;
      if (stays) continue;
      const to = hole * STRIDE;
      slots[to] = slots[at]!;
      slots[to + HI] = slots[at + HI]!;
      slots[to + EXP] = slots[at + EXP]!;
      hole = slot;
    }
    const to = hole * STRIDE;
    slots[to] = 0;
    slots[to + HI] = 0;
    slots[to + EXP] = 0;
    this.#size -= 1;
  }

  /** Rehashes every entry into a table of `capacity` slots (a power of two that holds them within the load factor). */
  #resize(capacity: number): void {
    const old = this.#slots;
    const slots = new Uint32Array(capacity * STRIDE);
    const mask = capacity - 1;
    for (let at = 0; at < old.length; at += STRIDE) {
      const expiry = old[at + EXP]!;
      if (expiry !== 0) this.#place(slots, mask, old[at]!, old[at + HI]!, expiry);
    }
    this.#slots = slots;
    this.#mask = mask;
    this.#limit = Math.floor(capacity * MAX_LOAD);
  }
}
