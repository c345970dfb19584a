/**
 * What a call's target names on a serving thread: an export of a hosted module or api object (by
 * own properties only), a lent object's operation, an entered resource, or an inline function. A
 * Portal host allows the first two; inline functions, module imports and entered resources only
 * a LoopThread's own host (HostOptions.inline and load), whatever a caller's handle says.
 */
import { compileInline } from '../call/compile.js';
import { exportAt, TargetKind, type Fn, type Target } from '../call/target.js';
import type { HostConnection } from './host-connection.js';
import type { HostOptions } from './host.js';
import type { EnteredResources } from './resources.js';

/* eslint-disable @typescript-eslint/no-require-imports -- loaded on first use, not at start-up (see ARCHITECTURE.md) */
const shapes = () => require('./exports.js') as typeof import('./exports.js');
const lender = () => require('./lender.js') as typeof import('./lender.js');
/* eslint-enable @typescript-eslint/no-require-imports */

export class HostTargets {
  private readonly modules: object[] = [];
  private readonly moduleIds = new Map<string, number>();

  constructor(
    private readonly options: HostOptions,
    /** The host's entered resources (made on first use). */
    private readonly entered: () => EnteredResources,
  ) {}

  /** Hosts a module namespace or api object; its id is what targets name. */
  add(namespace: object): number {
    this.modules.push(namespace);
    return this.modules.length - 1;
  }

  async importModule(specifier: string): Promise<unknown> {
    let id = this.moduleIds.get(specifier);
    if (id === undefined) {
      if (this.options.load === undefined) throw new TypeError('a portal serves only its api: it imports no modules');
      const ns = await this.options.load(specifier);
      id = this.moduleIds.get(specifier) ?? this.add(ns);
      this.moduleIds.set(specifier, id);
    }
    return [id, shapes().describeExports(this.modules[id] as object)];
  }

  /** The function a target names, and its `this`. */
  resolve(conn: HostConnection, target: Target, viaPort: boolean): [Fn, unknown] {
    switch (target[0]) {
      case TargetKind.Lent: {
        const [, refId, op, key, n] = target;
        const exit = (value: object, error: unknown): Promise<unknown> => this.entered().exit(value, error);
        return [(...args: unknown[]) => lender().performRefOp(conn.lender, refId, op, key, n, args, exit), undefined];
      }
      case TargetKind.Enter: {
        if (this.options.inline !== true) throw new TypeError('a portal serves only its api: it enters no resources');
        const [, inner, exit] = target;
        const [fn, self] = this.resolve(conn, inner, viaPort);
        return [(...args: unknown[]) => this.entered().enter(fn, self, args, exit), undefined];
      }
      case TargetKind.Export: {
        const [, moduleId, path] = target;
        const ns = this.modules[moduleId];
        if (ns === undefined) throw new ReferenceError(`no module with id ${String(moduleId)} on this thread`);
        const [value, self] = exportAt(ns, path);
        if (typeof value !== 'function')
          throw new TypeError(`${path.join('.')} is not a function on the serving thread`);
        return [value as Fn, self];
      }
      case TargetKind.Inline: {
        if (this.options.inline !== true) {
          throw new TypeError(
            'a portal serves only its api: it runs no inline functions (call the functions of its api)',
          );
        }
        const [, sourceId, source] = target;
        const table = conn.sources[viaPort ? 1 : 0];
        let fn = table.get(sourceId);
        if (source !== undefined) {
          fn = compileInline(source, 'on the serving thread');
          table.set(sourceId, fn);
        }
        if (fn === undefined)
          throw new ReferenceError(`inline function #${String(sourceId)} is unknown on this connection`);
        if (fn instanceof Error) throw fn;
        return [fn, undefined];
      }
    }
  }
}
