;; The `copy-rowhash64` row checksum (lib/format/row-hash.ts defines it) over many rows per call.
;; Assembled by `npm run build:wasm` (bench/build-wasm.ts, wabt) into lib/format/row-hash-wasm.ts;
;; test/unit/row-hash.test.ts checks that the embedded bytes are this file's.
;;
;; Why WebAssembly: the JS loop spends most of its instructions on DataView's per-load checks;
;; here a load is one instruction (out-of-range accesses trap on guard pages).
;;
;; Memory (fixed, never grown: the JS side keeps views on it), 64 pages = 4 MiB:
;;   [0, 8)          the 64-bit sum after a call, little-endian (low half, high half)
;;   [8, 16)         lanes a, b after an `open` call (a long row's first parts)
;;   [16, 1 MiB)     row ends, u32 each (262,140 at most), as offsets in the caller's chunk
;;   [1 MiB, 4 MiB)  row bytes (3 MiB - 8 at most: the tail read below may touch 3 bytes past)
(module
  (memory (export "memory") 64 64)

  ;; Hash `count` rows whose bytes lie from 1 MiB on and whose ends, at 16, are offsets in the
  ;; caller's chunk where the first row starts at `base`. Lanes start at a0, b0 (P1, P2 for
  ;; whole rows); `extra` is added to each row's length (bytes of the row hashed by earlier
  ;; calls). The sum (lo, hi) plus the rows' hashes, modulo 2^64, is stored at 0.
  ;; `open` (count 1, length a multiple of 8): stop after the 8-byte steps, store a, b at 8.
  (func (export "rows")
      (param $count i32) (param $base i32) (param $a0 i32) (param $b0 i32) (param $extra i32)
      (param $open i32) (param $lo i32) (param $hi i32)
    (local $sum i64) (local $p i32) (local $pend i32) (local $s i32) (local $e i32)
    (local $e8 i32) (local $j i32) (local $a i32) (local $b i32) (local $t i32)
    (local.set $sum
      (i64.or (i64.shl (i64.extend_i32_u (local.get $hi)) (i64.const 32))
              (i64.extend_i32_u (local.get $lo))))
    (local.set $p (i32.const 16))
    (local.set $pend (i32.add (i32.const 16) (i32.shl (local.get $count) (i32.const 2))))
    (local.set $s (i32.const 1048576))
    (block $done
      (loop $row
        (br_if $done (i32.ge_u (local.get $p) (local.get $pend)))
        ;; The row is [s, e) in memory.
        (local.set $e (i32.add (i32.sub (i32.load (local.get $p)) (local.get $base)) (i32.const 1048576)))
        (local.set $a (local.get $a0))
        (local.set $b (local.get $b0))
        (local.set $j (local.get $s))
        (local.set $e8 (i32.sub (local.get $e) (i32.const 8)))
        ;; Step 3: while 8 bytes are left, round(acc, w) = rotl(acc + w * P2, 13) * P1 per lane.
        (block $b8
          (loop $l8
            (br_if $b8 (i32.gt_s (local.get $j) (local.get $e8)))
            (local.set $a (i32.mul (i32.rotl (i32.add (local.get $a)
                (i32.mul (i32.load (local.get $j)) (i32.const 0x85ebca77))) (i32.const 13)) (i32.const 0x9e3779b1)))
            (local.set $b (i32.mul (i32.rotl (i32.add (local.get $b)
                (i32.mul (i32.load offset=4 (local.get $j)) (i32.const 0x85ebca77))) (i32.const 13)) (i32.const 0x9e3779b1)))
            (local.set $j (i32.add (local.get $j) (i32.const 8)))
            (br $l8)))
        (if (local.get $open)
          (then
            (i32.store (i32.const 8) (local.get $a))
            (i32.store (i32.const 12) (local.get $b))
            (return)))
        ;; Step 4: one more 4-byte word into lane a.
        (if (i32.le_s (i32.add (local.get $j) (i32.const 4)) (local.get $e))
          (then
            (local.set $a (i32.mul (i32.rotl (i32.add (local.get $a)
                (i32.mul (i32.load (local.get $j)) (i32.const 0x85ebca77))) (i32.const 13)) (i32.const 0x9e3779b1)))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))))
        ;; Step 5: the 0-3 bytes left, zero-padded: a 4-byte load masked to e - j bytes.
        (local.set $t (i32.and (i32.load (local.get $j))
            (i32.sub (i32.shl (i32.const 1) (i32.shl (i32.sub (local.get $e) (local.get $j)) (i32.const 3))) (i32.const 1))))
        (local.set $b (i32.mul (i32.rotl (i32.add (local.get $b)
            (i32.mul (local.get $t) (i32.const 0x85ebca77))) (i32.const 13)) (i32.const 0x9e3779b1)))
        ;; Step 6: b ^= n; a += b; b += a.
        (local.set $b (i32.xor (local.get $b) (i32.add (i32.sub (local.get $e) (local.get $s)) (local.get $extra))))
        (local.set $a (i32.add (local.get $a) (local.get $b)))
        (local.set $b (i32.add (local.get $b) (local.get $a)))
        ;; Step 7: avalanche each lane.
        (local.set $a (i32.xor (local.get $a) (i32.shr_u (local.get $a) (i32.const 16))))
        (local.set $a (i32.mul (local.get $a) (i32.const 0x85ebca6b)))
        (local.set $a (i32.xor (local.get $a) (i32.shr_u (local.get $a) (i32.const 13))))
        (local.set $a (i32.mul (local.get $a) (i32.const 0xc2b2ae35)))
        (local.set $a (i32.xor (local.get $a) (i32.shr_u (local.get $a) (i32.const 16))))
        (local.set $b (i32.xor (local.get $b) (i32.shr_u (local.get $b) (i32.const 16))))
        (local.set $b (i32.mul (local.get $b) (i32.const 0x85ebca6b)))
        (local.set $b (i32.xor (local.get $b) (i32.shr_u (local.get $b) (i32.const 13))))
        (local.set $b (i32.mul (local.get $b) (i32.const 0xc2b2ae35)))
        (local.set $b (i32.xor (local.get $b) (i32.shr_u (local.get $b) (i32.const 16))))
        ;; Step 8: the row's hash a * 2^32 + b, added to the sum (i64 wraps modulo 2^64).
        (local.set $sum (i64.add (local.get $sum)
            (i64.or (i64.shl (i64.extend_i32_u (local.get $a)) (i64.const 32)) (i64.extend_i32_u (local.get $b)))))
        (local.set $s (local.get $e))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $row)))
    (i64.store (i32.const 0) (local.get $sum))))
