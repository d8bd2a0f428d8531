import { PgClient } from "@effect/sql-pg"
import { Redacted } from "effect"
import { DEFAULT_URL } from "../src/TrustStore/Pg.js"
import { sqlTrustStoreSuite } from "./support/sqlTrustStoreSuite.js"

const url = process.env.BTPS_TEST_PG_URL ?? DEFAULT_URL

await sqlTrustStoreSuite("PgTrustStore", url, PgClient.layer({ url: Redacted.make(url), connectTimeout: "60 seconds" }))
