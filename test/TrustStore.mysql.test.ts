import { mysqlClient, mysqlUrl } from "./support/sqlDatabases.js"
import { sqlTrustStoreSuite } from "./support/sqlTrustStoreSuite.js"

await sqlTrustStoreSuite("MysqlTrustStore", mysqlUrl, mysqlClient())
