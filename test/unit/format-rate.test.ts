import { describe, expect, it } from 'vitest';
import { formatBytesPerSecond, formatRate } from '../../lib/cli/progress.js';

describe('rates: binary units, 3 significant digits', () => {
  it('formats the figures the summary prints', () => {
    expect(formatRate(2000, 137000)).toBe('14.6 B/s'); // was "14.598540145985401 B/s"
    expect(formatRate(0, 1000)).toBe('0 B/s');
    expect(formatRate(5, 0)).toBe('-');
    expect(formatBytesPerSecond(999)).toBe('999 B/s');
    expect(formatBytesPerSecond(1000)).toBe('0.977 KiB/s');
    expect(formatBytesPerSecond(1.234 * 1024 * 1024)).toBe('1.23 MiB/s');
    expect(formatBytesPerSecond(123.4 * 1024 * 1024)).toBe('123 MiB/s');
    expect(formatBytesPerSecond(99.96)).toBe('100 B/s');
    expect(formatBytesPerSecond(1024 * 1024)).toBe('1.0 MiB/s');
    expect(formatBytesPerSecond(1.2 * 1024)).toBe('1.2 KiB/s');
    expect(formatBytesPerSecond(10.5)).toBe('10.5 B/s');
    expect(formatBytesPerSecond(2.5 * 1024 ** 5)).toBe('2560 TiB/s');
  });
});
