/**
 * Configuration derived from a `Schema.Struct`: one environment name per field (`PREFIX_UPPER_SNAKE`,
 * nested structs add their field name), read with the Config type the field's encoded side asks for,
 * and checked against the schema so that a bad value names its variable.
 *
 * The schema stays the one source of defaults: absent variables are left out and the schema's
 * defaults apply when the result is decoded.
 *
 * @since 0.1.0
 */
import { Config, ConfigError, Either, Option, ParseResult, Schema, SchemaAST } from "effect"

/** How a field's value is read from text. @since 0.1.0 */
export type Kind = "string" | "number" | "boolean" | "literal"

/** One leaf field of a struct schema. @since 0.1.0 */
export interface Field {
  /** Property path in the options object, e.g. `["tls", "cert"]`. */
  readonly path: ReadonlyArray<string>
  /** Environment variable, e.g. `BTPS_TLS_CERT`. */
  readonly env: string
  /** Command-line flag without dashes, e.g. `tls-cert`. */
  readonly flag: string
  readonly kind: Kind
  /** The allowed values of a `literal` field. */
  readonly literals: ReadonlyArray<string>
  /** The schema's `documentation` annotation ("" when absent; `description` would replace parse messages). */
  readonly description: string
  /** The value is a secret (a `Schema.Redacted` field). */
  readonly redacted: boolean
  readonly optional: boolean
}

const upperSnake = (name: string) => name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()
const kebab = (name: string) => name.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase()

const withoutUndefined = (ast: SchemaAST.AST): SchemaAST.AST => {
  if (!SchemaAST.isUnion(ast)) return ast
  const types = ast.types.filter((t) => t._tag !== "UndefinedKeyword")
  return types.length === 1 ? types[0]! : SchemaAST.Union.make(types, ast.annotations)
}

/** The first description found going from the outermost node toward the encoded base. */
const descriptionOf = (ast: SchemaAST.AST): string => {
  let node: SchemaAST.AST | undefined = ast
  while (node !== undefined) {
    const found = SchemaAST.getDocumentationAnnotation(node)
    if (Option.isSome(found)) return found.value
    node = node._tag === "Refinement" || node._tag === "Transformation" ? node.from : undefined
  }
  return ""
}

/** The encoded base type under refinements and transformations. */
const baseOf = (ast: SchemaAST.AST): SchemaAST.AST =>
  ast._tag === "Refinement" || ast._tag === "Transformation" ? baseOf(ast.from) : ast

const isRedacted = (ast: SchemaAST.AST): boolean =>
  ast._tag === "Transformation" && ast.to._tag === "Declaration" &&
  SchemaAST.getDescriptionAnnotation(ast.to).pipe(Option.exists((d) => d.startsWith("Redacted(")))

const literalsOf = (ast: SchemaAST.AST): ReadonlyArray<string> | undefined => {
  if (ast._tag === "Literal" && typeof ast.literal === "string") return [ast.literal]
  if (SchemaAST.isUnion(ast)) {
    const all = ast.types.map((t) => (t._tag === "Literal" && typeof t.literal === "string" ? t.literal : undefined))
    if (all.every((l) => l !== undefined)) return all as ReadonlyArray<string>
  }
  return undefined
}

const propertiesOf = (ast: SchemaAST.AST): ReadonlyArray<SchemaAST.PropertySignature> | undefined => {
  const base = baseOf(ast)
  return base._tag === "TypeLiteral" ? base.propertySignatures : undefined
}

/**
 * The leaf fields of a struct schema, in declaration order, with their variable and flag names.
 *
 * @since 0.1.0
 */
export const fieldsOf = (schema: Schema.Schema.Any, prefix: string): ReadonlyArray<Field> => {
  const walk = (ast: SchemaAST.AST, path: ReadonlyArray<string>): Array<Field> =>
    (propertiesOf(ast) ?? []).flatMap((property) => {
      const name = String(property.name)
      const at = [...path, name]
      const type = withoutUndefined(property.type)
      if (propertiesOf(type) !== undefined) return walk(type, at)
      const base = baseOf(type)
      const literals = literalsOf(base)
      const kind: Kind = literals !== undefined
        ? "literal"
        : base._tag === "NumberKeyword"
        ? "number"
        : base._tag === "BooleanKeyword"
        ? "boolean"
        : "string"
      return [{
        path: at,
        env: [prefix, ...at.map(upperSnake)].join("_"),
        flag: at.map(kebab).join("-"),
        kind,
        literals: literals ?? [],
        description: descriptionOf(type),
        redacted: isRedacted(type),
        optional: property.isOptional
      }]
    })
  return walk(schema.ast, [])
}

const leafConfig = (field: Field): Config.Config<Option.Option<unknown>> => {
  switch (field.kind) {
    case "number":
      return Config.option(Config.number(field.env))
    case "boolean":
      return Config.option(Config.boolean(field.env))
    case "literal":
      return Config.option(Config.literal(...field.literals)(field.env))
    case "string":
      return Config.option(Config.string(field.env))
  }
}

const setPath = (target: Record<string, unknown>, path: ReadonlyArray<string>, value: unknown) => {
  let node = target
  for (const key of path.slice(0, -1)) {
    const next = (node[key] ??= {}) as Record<string, unknown>
    node = next
  }
  node[path[path.length - 1]!] = value
}

/**
 * The schema's encoded input read from configuration: each field from its variable ({@link fieldsOf}),
 * absent ones left to the schema's defaults, the whole checked against the schema (each problem an
 * `InvalidData` at its variable; a missing required field a `MissingData`).
 *
 * @since 0.1.0
 */
export const configOf = <A, I>(schema: Schema.Schema<A, I>, prefix: string): Config.Config<I> => {
  const fields = fieldsOf(schema, prefix)
  const byPath = new Map(fields.map((f) => [f.path.join("."), f]))
  return Config.all(fields.map(leafConfig)).pipe(
    Config.mapOrFail((values) => {
      const input: Record<string, unknown> = {}
      values.forEach((value, i) => {
        if (Option.isSome(value)) setPath(input, fields[i]!.path, value.value)
      })
      return Schema.decodeUnknownEither(schema, { errors: "all" })(input).pipe(
        Either.map(() => input as I),
        Either.mapLeft((error) => {
          const issues = ParseResult.ArrayFormatter.formatErrorSync(error).flatMap((issue) => {
            const at = issue.path.map(String).join(".")
            const field = byPath.get(at)
            if (issue._tag === "Missing") {
              // a missing struct (e.g. all of `tls`) is reported as its required leaves
              const leaves = field === undefined ? fields.filter((f) => !f.optional && f.path.join(".").startsWith(`${at}.`)) : [field]
              return leaves.map((f) => ConfigError.MissingData([f.env], "missing"))
            }
            // an optional field's union also reports "Expected undefined": noise
            if (issue.message.startsWith("Expected undefined")) return []
            const name = field?.env ?? [prefix, ...issue.path.map((p) => upperSnake(String(p)))].join("_")
            return [ConfigError.InvalidData([name], issue.message)]
          })
          return issues.slice(1).reduce((all, e) => ConfigError.And(all, e), issues[0] ?? ConfigError.InvalidData([], error.message))
        })
      )
    })
  )
}

/**
 * One line per problem of a configuration error: `<name>: <message>`, with `rename` choosing how a
 * variable is shown (e.g. as the flag that supplied it).
 *
 * @since 0.1.0
 */
export const describeConfigError = (error: ConfigError.ConfigError, rename: (path: ReadonlyArray<string>) => string = (p) => p.join("_")): ReadonlyArray<string> => {
  switch (error._op) {
    case "And":
      return [...describeConfigError(error.left, rename), ...describeConfigError(error.right, rename)]
    case "Or": {
      // both alternatives failed: a "missing" one is noise next to a real problem
      const left = describeConfigError(error.left, rename)
      const right = describeConfigError(error.right, rename)
      if (ConfigError.isMissingDataOnly(error.left) && !ConfigError.isMissingDataOnly(error.right)) return right
      if (ConfigError.isMissingDataOnly(error.right) && !ConfigError.isMissingDataOnly(error.left)) return left
      return [...left, ...right]
    }
    case "MissingData":
      return [`${rename(error.path)}: a value is required`]
    case "InvalidData":
      return [`${rename(error.path)}: ${error.message}`]
    case "SourceUnavailable":
    case "Unsupported":
      return [`${rename(error.path)}: ${error.message}`]
  }
}
