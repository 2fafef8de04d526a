#!/usr/bin/env node
// Validates Kubernetes manifests (YAML, many documents per file; "-" reads stdin) against the
// Kubernetes API schemas, offline, like `kubeconform -strict`:
//   1. the JSON-Schema validators that kubernetes-models compiles (ajv) from the Kubernetes OpenAPI
//      definitions: types, required fields, enums and formats (int32, int-or-string, quantity...);
//   2. unknown fields, which those schemas let through (the API server's strict field validation and
//      `kubectl --validate=strict` reject them): every field of every object is looked up in the type
//      declarations the same package generates from the same definitions, with TypeScript's checker.
// A document whose apiVersion/kind has no schema is an error, not a skip. Exit code 0 when every
// document is valid, 1 when one is not, 2 when the tools are missing or the arguments are wrong.
//
// Usage: node deploy/scripts/validate-manifests.mjs [--quiet] FILE... | -
// The tools come from deploy/.tools (deploy/install-tools.sh); DEPLOY_TOOLS_DIR overrides the folder.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import console from 'node:console';
import process from 'node:process';

const here = dirname(fileURLToPath(import.meta.url));
export const toolsDir = resolve(process.env.DEPLOY_TOOLS_DIR ?? join(here, '..', '.tools'));
const modelsDir = join(toolsDir, 'node_modules', 'kubernetes-models');

/** Says what is missing; null when the tools are there. */
export function missingTools() {
  const needed = [join(modelsDir, 'package.json'), join(toolsDir, 'node_modules', 'typescript', 'package.json'), join(toolsDir, 'node_modules', 'yaml', 'package.json')];
  const missing = needed.filter((path) => !existsSync(path));
  if (missing.length === 0) return null;
  return `the manifest validator's packages are not installed (missing ${missing.join(', ')})`;
}

const toolImport = (name) => import(pathToFileURL(join(toolsDir, 'node_modules', name, JSON.parse(readFileSync(join(toolsDir, 'node_modules', name, 'package.json'), 'utf8')).main ?? 'index.js')).href);

/** kubernetes-models' module for an apiVersion and kind, e.g. apps/v1 Deployment -> apps/v1/Deployment. */
function modelModule(apiVersion, kind) {
  if (typeof apiVersion !== 'string' || typeof kind !== 'string' || !/^[A-Za-z0-9]+$/.test(kind)) return null;
  const parts = apiVersion.split('/');
  if (parts.length > 2 || parts.some((part) => !/^[a-z0-9.-]+$/.test(part))) return null;
  const rel = `${apiVersion}/${kind}`;
  return existsSync(join(modelsDir, `${rel}.js`)) && existsSync(join(modelsDir, `${rel}.d.ts`)) ? rel : null;
}

let tsState;

/** A TypeScript program with one type alias per root kind, to walk their declared fields. */
function typeChecker(ts, modules) {
  const key = [...modules].sort().join('|');
  if (tsState?.key === key) return tsState;
  const entry = join(toolsDir, '__manifest_roots__.ts');
  const list = [...modules];
  const source =
    list.map((rel, i) => `import type { I${rel.split('/').pop()} as R${i} } from "kubernetes-models/${rel}";`).join('\n') +
    '\n' +
    list.map((_, i) => `export type Root${i} = R${i};`).join('\n') +
    '\n';
  const options = { strict: true, noEmit: true, skipLibCheck: true, types: [], module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022 };
  const host = ts.createCompilerHost(options, true);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, languageVersion, ...rest) => (resolve(name) === entry ? ts.createSourceFile(name, source, languageVersion, true) : getSourceFile.call(host, name, languageVersion, ...rest));
  host.fileExists = (name) => resolve(name) === entry || fileExists.call(host, name);
  host.readFile = (name) => (resolve(name) === entry ? source : readFile.call(host, name));
  const program = ts.createProgram([entry], options, host);
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(entry);
  const problems = ts.getPreEmitDiagnostics(program).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (problems.length > 0) throw new Error(`cannot load the schema declarations: ${ts.flattenDiagnosticMessageText(problems[0].messageText, '\n')}`);
  const roots = new Map();
  for (const statement of file.statements) {
    if (ts.isTypeAliasDeclaration(statement)) roots.set(list[Number(statement.name.text.slice(4))], checker.getTypeAtLocation(statement.name));
  }
  tsState = { key, ts, checker, roots };
  return tsState;
}

const pointer = (path, key) => `${path}/${String(key).replaceAll('~', '~0').replaceAll('/', '~1')}`;

/** Fields of `value` that `type` does not declare, at any depth (JSON pointers). */
function unknownFields({ ts, checker }, value, type, path = '', found = []) {
  if (value === null || typeof value !== 'object') return found;
  type = checker.getNonNullableType(type);
  if (type.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return found;
  if (type.isUnion()) {
    const candidates = type.types.filter((member) => (Array.isArray(value) ? checker.isArrayType(member) : member.flags & ts.TypeFlags.Object && !checker.isArrayType(member)));
    if (candidates.length !== 1) return found; // no object member: ajv reports the wrong type
    type = candidates[0];
  }
  if (Array.isArray(value)) {
    if (checker.isArrayType(type) || checker.isTupleType(type)) {
      const [element] = checker.getTypeArguments(type);
      value.forEach((item, i) => unknownFields({ ts, checker }, item, element, `${path}/${i}`, found));
    }
    return found;
  }
  const index = checker.getIndexTypeOfType(type, ts.IndexKind.String);
  const properties = checker.getPropertiesOfType(type);
  if (properties.length === 0 && !index) return found; // an open object (`object`, `{}`)
  for (const [key, child] of Object.entries(value)) {
    const property = checker.getPropertyOfType(type, key);
    if (property) {
      unknownFields({ ts, checker }, child, checker.getTypeOfSymbol(property), pointer(path, key), found);
    } else if (index) {
      unknownFields({ ts, checker }, child, index, pointer(path, key), found);
    } else {
      found.push(pointer(path, key));
    }
  }
  return found;
}

function describe(doc) {
  const meta = doc && typeof doc === 'object' ? doc.metadata ?? {} : {};
  const name = meta.namespace ? `${meta.namespace}/${meta.name}` : meta.name;
  return `${doc?.kind ?? '(no kind)'} ${name ?? '(no name)'}`;
}

const ajvMessage = (error) => `${error.instancePath || '/'}: ${error.message}${error.params?.allowedValues ? ` (${error.params.allowedValues.join(', ')})` : ''}`;

/**
 * Validates YAML text. Returns one result per document: { source, resource, valid, errors[] }.
 */
export async function validateYaml(text, source = 'stdin') {
  const missing = missingTools();
  if (missing) throw new Error(`${missing}: run \`bash deploy/install-tools.sh\``);
  const YAML = await toolImport('yaml');
  const ts = (await toolImport('typescript')).default;
  const docs = YAML.parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
  const results = [];
  const modules = new Map();
  for (const [i, doc] of docs.entries()) {
    if (doc.errors.length > 0) {
      results.push({ source, resource: `document ${i + 1}`, valid: false, errors: doc.errors.map((e) => `YAML: ${e.message}`) });
      continue;
    }
    const value = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) continue; // an empty document
    const entry = { source, resource: describe(value), valid: true, errors: [], value };
    results.push(entry);
    if (typeof value !== 'object' || Array.isArray(value)) {
      entry.errors.push('not a Kubernetes object (expected a mapping with apiVersion and kind)');
      continue;
    }
    const rel = modelModule(value.apiVersion, value.kind);
    if (!rel) {
      entry.errors.push(`no schema for apiVersion "${value.apiVersion}", kind "${value.kind}"`);
      continue;
    }
    modules.set(entry, rel);
  }
  const checked = new Set(modules.values());
  const state = checked.size > 0 ? typeChecker(ts, checked) : null;
  for (const [entry, rel] of modules) {
    const model = await import(pathToFileURL(join(modelsDir, `${rel}.js`)).href);
    const Model = model[rel.split('/').pop()];
    try {
      new Model(entry.value).validate();
    } catch (error) {
      const errors = Array.isArray(error?.errors) ? error.errors.map(ajvMessage) : [String(error?.message ?? error)];
      entry.errors.push(...errors);
    }
    for (const path of unknownFields(state, entry.value, state.roots.get(rel))) entry.errors.push(`${path}: unknown field "${path.split('/').pop()}"`);
  }
  for (const entry of results) {
    entry.valid = entry.errors.length === 0;
    delete entry.value;
  }
  return results;
}

async function main(argv) {
  const quiet = argv.includes('--quiet');
  const files = argv.filter((arg) => arg !== '--quiet');
  if (files.length === 0) {
    console.error('usage: validate-manifests.mjs [--quiet] FILE... | -');
    return 2;
  }
  const missing = missingTools();
  if (missing) {
    console.error(`validate-manifests: ${missing}: run \`bash deploy/install-tools.sh\``);
    return 2;
  }
  let resources = 0;
  let invalid = 0;
  for (const file of files) {
    const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
    for (const result of await validateYaml(text, file === '-' ? 'stdin' : file)) {
      resources += 1;
      if (result.valid) {
        if (!quiet) console.log(`${result.source} - ${result.resource} is valid`);
      } else {
        invalid += 1;
        for (const error of result.errors) console.log(`${result.source} - ${result.resource} is invalid: ${error}`);
      }
    }
  }
  console.log(`Summary: ${resources} resources found - Valid: ${resources - invalid}, Invalid: ${invalid}`);
  return invalid > 0 ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error) => {
      console.error(`validate-manifests: ${error?.stack ?? error}`);
      process.exit(2);
    },
  );
}
