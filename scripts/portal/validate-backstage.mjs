// Backstage entities (a JSON array on stdin, placeholders already resolved) checked the way
// Backstage's catalog does: the envelope and entity schemas, each kind's own schema, and the
// catalog's default entity policies (field formats, no foreign root fields).
// Prints [{kind, name, ok, error}] as JSON.
import {
  apiEntityV1alpha1Validator,
  componentEntityV1alpha1Validator,
  DefaultNamespaceEntityPolicy,
  entityEnvelopeSchemaValidator,
  entitySchemaValidator,
  EntityPolicies,
  FieldFormatEntityPolicy,
  NoForeignRootFieldsEntityPolicy,
  SchemaValidEntityPolicy,
  resourceEntityV1alpha1Validator,
  systemEntityV1alpha1Validator,
} from "@backstage/catalog-model";

const kinds = {
  Component: componentEntityV1alpha1Validator,
  API: apiEntityV1alpha1Validator,
  System: systemEntityV1alpha1Validator,
  Resource: resourceEntityV1alpha1Validator,
};
const policy = EntityPolicies.allOf([
  new DefaultNamespaceEntityPolicy(),
  new NoForeignRootFieldsEntityPolicy(),
  new FieldFormatEntityPolicy(),
  new SchemaValidEntityPolicy(),
]);
const envelope = entityEnvelopeSchemaValidator();
const entity = entitySchemaValidator();

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const results = [];
for (const item of JSON.parse(Buffer.concat(chunks).toString("utf8"))) {
  const result = { kind: item?.kind, name: item?.metadata?.name, ok: true, error: null };
  try {
    envelope(item);
    entity(item);
    const validator = kinds[item.kind];
    if (!validator) throw new Error(`no validator for kind ${item.kind}`);
    if ((await validator.check(item)) !== true) throw new Error(`not a ${item.kind} entity`);
    await policy.enforce(item);
  } catch (err) {
    result.ok = false;
    result.error = String(err?.message ?? err);
  }
  results.push(result);
}
process.stdout.write(JSON.stringify(results));
