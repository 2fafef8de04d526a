// Faults forced on a real client object in tests: the same object, with some methods replaced (a request
// that times out, an answer that is lost, a call that is counted), everything else passed through.

/** `target` with the methods in `replacements` replaced; every other property read from `target` itself. */
export function withReplaced<T extends object>(target: T, replacements: { [K in keyof T]?: T[K] }): T {
  return new Proxy(target, {
    get(object, property, receiver) {
      if (Object.hasOwn(replacements, property)) return replacements[property as keyof T];
      const value: unknown = Reflect.get(object, property, receiver);
      return typeof value === 'function' ? value.bind(object) : value;
    },
  });
}

/** The error a request gives when no answer came in time, as the NATS client names it. */
export function timeoutError(): Error {
  return Object.assign(new Error('TIMEOUT'), { name: 'TimeoutError' });
}
