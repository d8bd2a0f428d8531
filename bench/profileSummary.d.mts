/** Types of bench/profileSummary.mjs (plain JavaScript so it runs with node alone). */
export interface Summary {
  readonly wallMs: number
  readonly busyMs: number
  readonly idleMs: number
  readonly functions: ReadonlyArray<readonly [string, number]>
  readonly files: ReadonlyArray<readonly [string, number]>
  readonly packages: ReadonlyArray<readonly [string, number]>
  readonly bundled: boolean
}
export declare const packageOf: (url: string, functionName: string) => string
export declare const summarize: (file: string) => Summary
export declare const formatSummary: (summary: Summary, options?: { readonly title?: string; readonly top?: number }) => string
