import { pgClient, pgUrl } from "./support/databases.js"
import { sqlTrustStoreSuite } from "./support/sqlTrustStoreSuite.js"

await sqlTrustStoreSuite("PgTrustStore", pgUrl, pgClient({ connectTimeout: "60 seconds" }))
