// Reads a JSON array of Flux scripts on stdin; prints a JSON array of booleans: is each one valid
// Flux, parsed and type-checked against Flux's builtins (unknown functions, wrong arguments and
// type errors are invalid). Used by tests/observability/test_alerting.py.
const flux = require("@influxdata/flux-lsp-node");

const scripts = JSON.parse(require("fs").readFileSync(0, "utf8"));
const results = scripts.map((script) => {
  try {
    return new flux.Flux(script).is_valid();
  } catch (error) {
    return false;
  }
});
process.stdout.write(JSON.stringify(results) + "\n");
