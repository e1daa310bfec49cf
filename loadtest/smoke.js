// A short, steady load on staging's /health through the edge, judged against loadtest/sla.json.
// Run by the deploy workflow after `pulumi up` of staging; k6 exits non-zero when a threshold
// fails, which stops the pipeline before prod. The rate stays under the edge's per-IP limit
// (a test keeps it so), so the edge's rate limiting does not fail the run.
import http from "k6/http";
import { check } from "k6";

const sla = JSON.parse(open("./sla.json"));

export const options = {
  scenarios: {
    steady: {
      executor: "constant-arrival-rate",
      rate: sla.rate_per_second,
      timeUnit: "1s",
      duration: sla.duration,
      preAllocatedVUs: 20,
    },
  },
  thresholds: {
    http_req_failed: [`rate<${sla.max_error_rate}`],
    http_req_duration: [`p(95)<${sla.p95_ms}`, `p(99)<${sla.p99_ms}`],
    checks: ["rate>0.99"],
  },
};

export default function () {
  const response = http.get(`${__ENV.BASE_URL}/health`);
  check(response, { "status is 200": (r) => r.status === 200 });
}
