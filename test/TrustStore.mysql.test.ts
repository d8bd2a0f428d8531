import { MysqlClient } from "@effect/sql-mysql2"
import { Redacted } from "effect"
import { DEFAULT_URL } from "../src/TrustStore/Mysql.js"
import { sqlTrustStoreSuite } from "./support/sqlTrustStoreSuite.js"

const url = process.env.BTPS_TEST_MYSQL_URL ?? DEFAULT_URL

await sqlTrustStoreSuite("MysqlTrustStore", url, MysqlClient.layer({ url: Redacted.make(url) }))
