// Validates custom resources against the schemas of the pinned packages in package.json
// (validators compiled from the operators' CRD OpenAPI schemas). Input on stdin: a JSON list
// of manifests. Output on stdout: a JSON list, one entry per manifest, {kind, name, errors},
// where errors is null for a valid manifest and "no schema" for a kind this file does not cover.
import { readFileSync } from "node:fs";
import { Kafka } from "@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1beta2/Kafka";
import { KafkaNodePool } from "@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1beta2/KafkaNodePool";
import { KafkaTopic } from "@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1beta2/KafkaTopic";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";

const MODELS = [Kafka, KafkaNodePool, KafkaTopic, ScaledObject];

function check(manifest) {
  const model = MODELS.find((m) => m.apiVersion === manifest.apiVersion && m.kind === manifest.kind);
  const name = manifest.metadata?.name ?? null;
  if (!model) return { kind: manifest.kind, name, errors: "no schema" };
  try {
    new model(manifest).validate();
    return { kind: manifest.kind, name, errors: null };
  } catch (err) {
    const details = err.errors ? err.errors.map((e) => `${e.instancePath || "/"} ${e.message ?? e.keyword}`) : [];
    return { kind: manifest.kind, name, errors: details.length ? details : [String(err.message ?? err)] };
  }
}

const manifests = JSON.parse(readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(manifests.map(check)));
