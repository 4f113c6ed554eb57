// V8 makes an object literal that contains a getter a dictionary-mode object, its properties in
// a hash table of about half a kilobyte; and getters added to objects one by one, each session
// with its own functions, end there too (no two objects can share the map). The session hands
// each of its parts a small object of callbacks and read-only views, three per connection: as
// dictionaries they cost about 1.5 KB per connection (issue 7's idle budget is 16 KB). Here the
// getters live on one prototype per set of names, shared by every session, and read a function
// the object holds as an ordinary property: the objects stay fast and share one map.

const prototypes = new Map<string, object>();

function prototypeFor(names: readonly string[]): object {
  const key = names.join('\0');
  let proto = prototypes.get(key);
  if (!proto) {
    proto = {};
    for (const name of names) {
      const field = `$${name}`;
      Object.defineProperty(proto, name, {
        get(this: Record<string, () => unknown>) {
          return this[field]!();
        },
        enumerable: true,
      });
    }
    prototypes.set(key, proto);
  }
  return proto;
}

/** `methods`, with each of `getters` as a read-only property (a prototype getter calling it). */
export function withGetters<T extends object, G extends Record<string, () => unknown>>(
  methods: T,
  getters: G,
): T & { readonly [K in keyof G]: ReturnType<G[K]> } {
  const names = Object.keys(getters);
  const o: Record<string, unknown> = Object.create(prototypeFor(names)) as Record<string, unknown>;
  Object.assign(o, methods);
  for (const name of names) o[`$${name}`] = getters[name];
  return o as T & { readonly [K in keyof G]: ReturnType<G[K]> };
}
