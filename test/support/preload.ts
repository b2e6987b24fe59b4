// Services the suite shares (PostgreSQL cluster, s3rver) start lazily on first use and register
// their own shutdown here, so a run that needs neither starts neither.
import { afterAll } from "bun:test"
import { stopAll } from "./services.ts"

afterAll(stopAll)
