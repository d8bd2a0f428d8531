/**
 * String formats shared by the artifact and trust schemas (date-times, e-mail, URLs, currencies).
 * Each carries an arbitrary so property tests generate valid values.
 */
import { Schema } from "effect"

const daysInMonth = (year: number, month: number): number => new Date(Date.UTC(year, month, 0)).getUTCDate()

/** The number written by the `count` ASCII digits at `at`, or -1 when one is not a digit. */
const digitsAt = (s: string, at: number, count: number): number => {
  let value = 0
  for (let i = at; i < at + count; i++) {
    const d = s.charCodeAt(i) - 48
    if (!(d >= 0 && d <= 9)) return -1
    value = value * 10 + d
  }
  return value
}

/**
 * ISO-8601 UTC date-time ending in `Z`, with a real calendar date (as the existing zod `datetime()`):
 * `YYYY-MM-DDTHH:MM:SS(.f+)?Z`. Read by character codes rather than a regular expression, since every
 * artifact's `issuedAt` passes through here (test/formats.test.ts checks it against the pattern).
 */
export const isIsoDateTime = (s: string): boolean => {
  const n = s.length
  if (n < 20 || s[n - 1] !== "Z" || s[4] !== "-" || s[7] !== "-" || s[10] !== "T" || s[13] !== ":" || s[16] !== ":") return false
  if (n > 20 && (s[19] !== "." || digitsAt(s, 20, n - 21) < 0 || n === 21)) return false
  const year = digitsAt(s, 0, 4)
  const month = digitsAt(s, 5, 2)
  const day = digitsAt(s, 8, 2)
  const hour = digitsAt(s, 11, 2)
  const minute = digitsAt(s, 14, 2)
  const second = digitsAt(s, 17, 2)
  // every month has 28 days: only later days need the calendar
  return year >= 0 && month >= 1 && month <= 12 && day >= 1 && (day <= 28 || day <= daysInMonth(year, month)) &&
    hour >= 0 && hour <= 23 && minute >= 0 && minute <= 59 && second >= 0 && second <= 59
}

const dateArbitrary = () => (fc: typeof import("effect/FastCheck")) =>
  fc
    .date({ min: new Date("1970-01-01T00:00:00.000Z"), max: new Date("2200-12-31T23:59:59.999Z"), noInvalidDate: true })
    .map((d) => d.toISOString())

/** `2025-01-15T00:00:00.000Z`; kept as the exact string received so signatures and records round-trip. */
export const IsoDateTime = Schema.String.pipe(
  Schema.filter(isIsoDateTime, {
    identifier: "IsoDateTime",
    message: () => "expected an ISO-8601 UTC date-time such as 2025-01-15T00:00:00.000Z",
    arbitrary: dateArbitrary
  })
)

/** Any date string `Date.parse` understands (storage timestamps written by other tools). */
export const DateString = Schema.String.pipe(
  Schema.filter((s) => !Number.isNaN(Date.parse(s)), {
    identifier: "DateString",
    message: () => "expected a date string",
    arbitrary: dateArbitrary
  })
)

const EMAIL = /^(?!\.)(?!.*\.\.)[A-Za-z0-9_'+\-.]*[A-Za-z0-9_+-]@(?:[A-Za-z0-9][A-Za-z0-9-]*\.)+[A-Za-z]{2,}$/

/** An e-mail address (the existing zod `email()` rule). */
export const Email = Schema.String.pipe(
  Schema.pattern(EMAIL, {
    identifier: "Email",
    message: () => "expected an e-mail address",
    arbitrary: () => (fc) => fc.stringMatching(/^[a-z0-9_+-]{1,12}@[a-z0-9]{1,10}\.[a-z]{2,5}$/)
  })
)

const isUrl = (s: string): boolean => {
  try {
    new URL(s)
    return true
  } catch {
    return false
  }
}

/** An absolute URL (the existing zod `url()` rule: whatever `new URL` accepts). */
export const Url = Schema.String.pipe(
  Schema.filter(isUrl, { identifier: "Url", message: () => "expected an absolute URL", arbitrary: () => (fc) => fc.webUrl() })
)

/**
 * ISO-4217 alphabetic codes of currencies (current ones and recently withdrawn national ones). The
 * non-currency `X..` codes (XXX, precious metals, test and fund codes) are refused, as by the existing SDK.
 */
export const CURRENCY_CODES: ReadonlyArray<string> = (
  "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BYR BZD " +
  "CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EEK EGP ERN ETB EUR FJD FKP GBP " +
  "GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW " +
  "KWD KYD KZT LAK LBP LKR LRD LSL LTL LVL LYD MAD MDL MGA MKD MMK MNT MOP MRO MRU MUR MVR MWK MXN MXV MYR MZN " +
  "NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE " +
  "SLL SOS SRD SSP STD STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED " +
  "VEF VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMK ZMW ZWG ZWL"
).split(" ")

const currencies: ReadonlySet<string> = new Set(CURRENCY_CODES)

/** An ISO-4217 currency code from {@link CURRENCY_CODES} (a set lookup: a 180-literal union decodes linearly). */
export const CurrencyCode = Schema.String.pipe(
  Schema.filter((s) => currencies.has(s), {
    identifier: "CurrencyCode",
    message: () => "expected an ISO-4217 currency code",
    arbitrary: () => (fc) => fc.constantFrom(...CURRENCY_CODES)
  })
)

/** A JSON number that survives the wire (no NaN or Infinity; JSON has no -0, so none is generated). */
export const JsonNumber = Schema.Number.pipe(
  Schema.finite({
    arbitrary: () => (fc) => fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => (Object.is(n, -0) ? 0 : n))
  })
)

/** An object key; `__proto__` is refused because assigning it would change the decoded object's prototype. */
export const RecordKey = Schema.String.pipe(
  Schema.filter((k) => k !== "__proto__", { message: () => '"__proto__" is not allowed as a key' })
)

/** Any JSON value. */
export type JsonValue = null | boolean | number | string | ReadonlyArray<JsonValue> | { readonly [key: string]: JsonValue }

/** Any JSON value (finite numbers, no `__proto__` keys). */
export const JsonValue: Schema.Schema<JsonValue> = Schema.Union(
  Schema.Null,
  Schema.Boolean,
  JsonNumber,
  Schema.String,
  Schema.Array(Schema.suspend((): Schema.Schema<JsonValue> => JsonValue)),
  Schema.Record({ key: RecordKey, value: Schema.suspend((): Schema.Schema<JsonValue> => JsonValue) })
).annotations({ identifier: "JsonValue" })

/** A JSON object. */
export const JsonRecord = Schema.Record({ key: RecordKey, value: JsonValue })
