// A tiny least-recently-used cache (hand-written test fixture).
export interface CacheOptions {
  maxSize: number
  onEvict?: (key: string) => void
}

export class LruCache<V> {
  private entries = new Map<string, V>()

  constructor(private options: CacheOptions) {}

  get(key: string): V | undefined {
    const value = this.entries.get(key)
    if (value !== undefined) {
      this.entries.delete(key)
      this.entries.set(key, value)
    }
    return value
  }

  set(key: string, value: V): void {
    this.entries.delete(key)
    this.entries.set(key, value)
    while (this.entries.size > this.options.maxSize) {
      const oldest = this.entries.keys().next().value as string
      this.entries.delete(oldest)
      this.options.onEvict?.(oldest)
    }
  }

  get size(): number {
    return this.entries.size
  }
}
