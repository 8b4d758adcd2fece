/**
 * A small typed builder for the OpenAPI v3 schemas of Weft's CRDs (`crd-*.ts`). Every node it
 * makes is structural in Kubernetes' sense: it has a `type` (or is int-or-string), objects list
 * their `properties`, maps use `additionalProperties`, and strings and lists carry the
 * `maxLength` / `maxItems` bounds the API server's CEL cost estimator needs. Pure data: the
 * result is plain JSON, written out by `crd-gen.ts`.
 */

/** One `x-kubernetes-validations` entry (a CEL rule evaluated by the API server). */
export interface CelRule {
  readonly rule: string;
  readonly message?: string;
  readonly messageExpression?: string;
  /** A JSONPath-like path (`.subsets`) the error is reported at, relative to the node. */
  readonly fieldPath?: string;
}

/** The subset of `JSONSchemaProps` (apiextensions.k8s.io/v1) that Weft's CRDs use. */
export interface Schema {
  readonly type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  readonly description?: string;
  readonly format?: string;
  readonly enum?: readonly (string | boolean)[];
  readonly pattern?: string;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly minProperties?: number;
  readonly maxProperties?: number;
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly required?: readonly string[];
  readonly additionalProperties?: Schema;
  readonly items?: Schema;
  readonly anyOf?: readonly Schema[];
  readonly 'x-kubernetes-int-or-string'?: true;
  readonly 'x-kubernetes-preserve-unknown-fields'?: true;
  readonly 'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  readonly 'x-kubernetes-list-map-keys'?: readonly string[];
  readonly 'x-kubernetes-map-type'?: 'atomic' | 'granular';
  readonly 'x-kubernetes-validations'?: readonly CelRule[];
}

interface Common {
  readonly description?: string;
  readonly rules?: readonly CelRule[];
}

/** Puts the keys in one fixed order (and drops undefined ones), so generated YAML is stable. */
function node(s: Record<string, unknown>, c: Common): Schema {
  const out: Record<string, unknown> = {};
  if (c.description !== undefined) out.description = c.description;
  for (const [k, v] of Object.entries(s)) if (v !== undefined) out[k] = v;
  if (c.rules !== undefined && c.rules.length > 0) out['x-kubernetes-validations'] = c.rules;
  return out as Schema;
}

export interface StringOpts extends Common {
  /** Required: every string is bounded (CEL cost), unless `enum` bounds it. */
  readonly maxLength: number;
  readonly minLength?: number;
  readonly pattern?: string;
  readonly format?: string;
}

export interface NumberOpts extends Common {
  readonly minimum?: number;
  readonly maximum?: number;
  readonly format?: string;
}

export interface ListOpts extends Common {
  /** Required: every list is bounded (CEL cost). */
  readonly maxItems: number;
  readonly minItems?: number;
  readonly listType?: 'atomic' | 'set' | 'map';
  readonly mapKeys?: readonly string[];
}

export interface ObjectOpts extends Common {
  readonly required?: readonly string[];
}

export interface MapOpts extends Common {
  /** Required: every map is bounded (CEL cost). */
  readonly maxProperties: number;
  readonly minProperties?: number;
}

export const s = {
  string(o: StringOpts): Schema {
    return node({ type: 'string', format: o.format, pattern: o.pattern, minLength: o.minLength, maxLength: o.maxLength }, o);
  },
  enum(values: readonly string[], c: Common = {}): Schema {
    return node({ type: 'string', enum: values }, c);
  },
  integer(o: NumberOpts = {}): Schema {
    return node({ type: 'integer', format: o.format, minimum: o.minimum, maximum: o.maximum }, o);
  },
  number(o: NumberOpts = {}): Schema {
    return node({ type: 'number', minimum: o.minimum, maximum: o.maximum }, o);
  },
  boolean(c: Common & { readonly enum?: readonly boolean[] } = {}): Schema {
    return node({ type: 'boolean', enum: c.enum }, c);
  },
  /** A port number, or a numeric string (Istio writes ports as strings). */
  intOrString(o: { readonly pattern: string; readonly maxLength: number } & Common): Schema {
    return node(
      { anyOf: [{ type: 'integer' }, { type: 'string' }], pattern: o.pattern, maxLength: o.maxLength, 'x-kubernetes-int-or-string': true },
      o,
    );
  },
  object(properties: Record<string, Schema>, o: ObjectOpts = {}): Schema {
    return node({ type: 'object', properties, required: o.required?.length ? o.required : undefined }, o);
  },
  list(items: Schema, o: ListOpts): Schema {
    return node(
      {
        type: 'array',
        minItems: o.minItems,
        maxItems: o.maxItems,
        items,
        'x-kubernetes-list-type': o.listType,
        'x-kubernetes-list-map-keys': o.mapKeys,
      },
      o,
    );
  },
  map(values: Schema, o: MapOpts): Schema {
    return node({ type: 'object', minProperties: o.minProperties, maxProperties: o.maxProperties, additionalProperties: values }, o);
  },
  /** Accepted so that it can be refused by name (with `message`) instead of silently pruned. */
  anyObject(c: Common = {}): Schema {
    return node({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true }, c);
  },
};

/** CEL: `true` when exactly one of `fields` is set on `self`. */
export function celExactlyOne(fields: readonly string[]): string {
  return fields.map((f) => `(has(self.${f}) ? 1 : 0)`).join(' + ') + ' == 1';
}

/** CEL: `true` when any of `fields` is set on `self` (or on `self.<under>`). */
export function celAnyOf(fields: readonly string[], under = 'self'): string {
  return fields.map((f) => `has(${under}.${f})`).join(' || ');
}
