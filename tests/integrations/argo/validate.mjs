// Validate AnalysisTemplate JSON documents (one file per argument) with Argo Rollouts' own schema,
// as packaged by @kubernetes-models/argo-rollouts (pinned in package-lock.json). Exit 1 on the first error.
import { AnalysisTemplate } from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/AnalysisTemplate";
import fs from "node:fs";

let failed = false;
for (const file of process.argv.slice(2)) {
  const doc = JSON.parse(fs.readFileSync(file, "utf8"));
  try {
    new AnalysisTemplate(doc).validate();
    console.log(`ok ${file}`);
  } catch (err) {
    console.log(`invalid ${file}: ${String(err && err.message ? err.message : err)}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
