/**
 * The value rule: what crosses by copy arrives as structuredClone would make it (errors as real
 * errors, platform value classes as themselves, data class instances as their fields), what is
 * lent arrives as a proxy, and lengths read from shared memory are bounded.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { types } from 'node:util';
import { ClosedError, DataCloneError, LoopThread } from 'loopthread';
import { thrown } from './helpers.js';

describe('errors arrive as real errors', () => {
  let loop: LoopThread;
  before(() => {
    loop = new LoopThread({ name: 'values-errors' });
  });
  after(() => {
    loop.closeSync();
  });

  it('an error thrown on the loop thread is a native error of its class, which structuredClone keeps', () => {
    const e = thrown(() =>
      loop.runSync(() => {
        throw Object.assign(new TypeError('bad input'), { code: 'E_BAD', detail: { at: 3 } });
      }),
    );
    assert.ok(e instanceof TypeError);
    assert.ok(types.isNativeError(e), 'util.types.isNativeError');
    assert.equal(Object.prototype.toString.call(e), '[object Error]');
    assert.equal(e.message, 'bad input');
    assert.equal((e as { code?: unknown }).code, 'E_BAD');
    assert.deepEqual((e as { detail?: unknown }).detail, { at: 3 });
    const cloned = structuredClone(e);
    assert.ok(cloned instanceof TypeError, 'structuredClone of the copy is still a TypeError');
    assert.equal(cloned.message, 'bad input');
  });

  it('an awaited call rejects with a native error too, and a subclass of ours keeps its class', async () => {
    const e = await loop
      .run(() => Promise.reject(new RangeError('out of range', { cause: new Error('below zero') })))
      .then(
        () => assert.fail('fulfilled'),
        (error: unknown) => error,
      );
    assert.ok(e instanceof RangeError && types.isNativeError(e));
    assert.ok(e.cause instanceof Error && types.isNativeError(e.cause));
    assert.equal(e.cause.message, 'below zero');
    const closed = thrown(() =>
      loop.runSync(async () => {
        const { ClosedError } = await import('loopthread');
        throw new ClosedError('gone');
      }),
    );
    assert.ok(closed instanceof ClosedError && types.isNativeError(closed));
    assert.equal(closed.name, 'ClosedError');
  });

  it('an error whose stack is undefined arrives with an undefined stack, not a made-up one', () => {
    const e = thrown(() =>
      loop.runSync(() => {
        const error = new Error('no stack');
        error.stack = undefined;
        throw error;
      }),
    );
    assert.ok(e instanceof Error);
    assert.equal(e.stack, undefined);
    assert.equal(structuredClone(e).stack, undefined, 'as structuredClone keeps it');
  });

  it('an AggregateError keeps its errors, each a native error', () => {
    const e = thrown(() =>
      loop.runSync(() => {
        throw new AggregateError([new SyntaxError('a'), new URIError('b')], 'both');
      }),
    );
    assert.ok(e instanceof AggregateError && types.isNativeError(e));
    assert.deepEqual(
      e.errors.map((x: unknown) => [types.isNativeError(x), (x as Error).name]),
      [
        [true, 'SyntaxError'],
        [true, 'URIError'],
      ],
    );
  });

  it('an error copied as data (an argument) is a native error on the other side', () => {
    const seen = loop.runSync(async (e: Error) => {
      const { types } = await import('node:util');
      return [types.isNativeError(e), e instanceof EvalError, Object.prototype.toString.call(e)];
    }, new EvalError('as data'));
    assert.deepEqual(seen, [true, true, '[object Error]']);
  });

  it('DataCloneError and ClosedError from loopthread itself still cross as themselves', () => {
    const e = thrown(() => loop.runSync((x: unknown) => x, Symbol('s')));
    assert.ok(e instanceof DataCloneError);
  });
});
