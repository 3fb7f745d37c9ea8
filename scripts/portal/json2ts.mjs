// JSON Schema on stdin -> TypeScript declarations on stdout, by json-schema-to-typescript.
//   node json2ts.mjs TYPE_NAME BANNER < schema.json
import { compile } from "json-schema-to-typescript";

const [name, banner] = process.argv.slice(2);
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const schema = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const ts = await compile(schema, name, {
  bannerComment: `/* ${banner} */`,
  additionalProperties: false, // the spec forbids unknown keys
  strictIndexSignatures: true,
  unreachableDefinitions: false,
  format: true,
});
process.stdout.write(ts);
