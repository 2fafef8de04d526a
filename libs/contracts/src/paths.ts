import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder holding the .proto sources (shipped with the build), for reflection and schemas. */
export const protoRoot = join(dirname(fileURLToPath(import.meta.url)), 'proto');
