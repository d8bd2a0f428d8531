import { mysqlClient, mysqlUrl } from "./support/databases.js"
import { sqlTrustStoreSuite } from "./support/sqlTrustStoreSuite.js"

await sqlTrustStoreSuite("MysqlTrustStore", mysqlUrl, mysqlClient())
