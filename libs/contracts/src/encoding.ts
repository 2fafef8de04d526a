// Encoding on the hot paths (a task per event and webhook, a record per attempt) with one writer per
// process. A new BinaryWriter starts small and doubles, allocating and copying, for every message; the
// shared one keeps its grown buffer and only the finished bytes are copied out.
import { BinaryWriter } from '@bufbuild/protobuf/wire';

interface MessageCodec<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
}

const shared = new BinaryWriter();

/** The same bytes as `codec.encode(message).finish()`. Encoding is synchronous, so one writer serves every caller. */
export function encodeMessage<T>(codec: MessageCodec<T>, message: T): Uint8Array {
  try {
    return codec.encode(message, shared).finish();
  } catch (error) {
    shared.finish(); // leaves the writer empty for the next message
    throw error;
  }
}
