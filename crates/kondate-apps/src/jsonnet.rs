//! Evaluating a definition file: Jsonnet (also `.json`, which is Jsonnet) with Hako's
//! `std.extVar('appId')` and env-provider native functions, or YAML.
//!
//! `std.native('provide.file')(std.toString({path: 'x.env'}), 'KEY')` and `provide.yaml`
//! behave as in Hako: with `expand` they return the value; without, they check that the key
//! exists and return the placeholder `${KEY}`, so that `show` prints no provided values.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rsjsonnet_lang::arena::Arena;
use rsjsonnet_lang::interner::InternedStr;
use rsjsonnet_lang::lexer::LexError;
use rsjsonnet_lang::parser::ParseError;
use rsjsonnet_lang::program::{
    AnalyzeError, Callbacks, EvalError, EvalErrorKind, EvalStackTraceItem, ImportError, LoadError,
    NativeError, Program, Thunk, Value,
};
use rsjsonnet_lang::span::{SpanContextId, SpanId};

use crate::AppsError;

/// Evaluate the definition at `path` (`.jsonnet`, `.json`, `.yml`, `.yaml`) to JSON.
pub fn evaluate(path: &Path, app_id: &str, expand: bool) -> Result<serde_json::Value, AppsError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "yml" | "yaml" => {
            let text = read(path)?;
            let value: serde_yaml_ng::Value =
                serde_yaml_ng::from_str(&text).map_err(|e| AppsError::Definition {
                    location: match e.location() {
                        Some(l) => format!("{}:{}:{}", path.display(), l.line(), l.column()),
                        None => path.display().to_string(),
                    },
                    message: format!("not valid YAML: {e}"),
                })?;
            serde_json::to_value(value).map_err(|e| AppsError::Definition {
                location: path.display().to_string(),
                message: format!("cannot be read as JSON-like data: {e}"),
            })
        }
        _ => evaluate_jsonnet(path, app_id, expand),
    }
}

fn read(path: &Path) -> Result<String, AppsError> {
    std::fs::read_to_string(path).map_err(|e| AppsError::Io {
        path: path.display().to_string(),
        source: e,
    })
}

/// A source file the program has loaded: where it is and its text, to turn spans into
/// `file:line:column`.
struct Source {
    ctx: SpanContextId,
    path: PathBuf,
    text: Vec<u8>,
}

struct Env<'p> {
    sources: Vec<Source>,
    imports: HashMap<PathBuf, Thunk<'p>>,
    /// Why the last import or native call failed (the library's errors carry no message).
    failure: Option<String>,
    expand: bool,
    provide_file: InternedStr<'p>,
    provide_yaml: InternedStr<'p>,
}

impl Env<'_> {
    fn source_of(&self, ctx: SpanContextId) -> Option<&Source> {
        self.sources.iter().find(|s| s.ctx == ctx)
    }

    /// `file:line:column` of a span.
    fn locate(&self, program: &Program<'_>, span: SpanId) -> String {
        let (ctx, start, _) = program.span_manager().get_span(span);
        match self.source_of(ctx) {
            Some(src) => {
                let (line, col) = line_col(&src.text, start);
                format!("{}:{line}:{col}", src.path.display())
            }
            None => "<std>".into(),
        }
    }

    fn dir_of(&self, program: &Program<'_>, span: SpanId) -> PathBuf {
        let (ctx, _, _) = program.span_manager().get_span(span);
        self.source_of(ctx)
            .and_then(|s| s.path.parent().map(Path::to_path_buf))
            .unwrap_or_default()
    }

    fn resolve(&self, program: &Program<'_>, from: SpanId, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir_of(program, from).join(p)
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &[u8], offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let col = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, col)
}

fn load<'p>(
    program: &mut Program<'p>,
    env: &mut Env<'p>,
    path: &Path,
) -> Result<Thunk<'p>, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (ctx, _) = program.span_manager_mut().insert_source_context(text.len());
    env.sources.push(Source {
        ctx,
        path: path.to_path_buf(),
        text: text.clone(),
    });
    let this_file = path.display().to_string();
    program
        .load_source(ctx, &text, true, &this_file)
        .map_err(|e| describe_load(program, env, &e))
}

fn evaluate_jsonnet(
    path: &Path,
    app_id: &str,
    expand: bool,
) -> Result<serde_json::Value, AppsError> {
    let arena = Arena::new();
    let mut program = Program::new(&arena);
    let options = program.intern_str("options");
    let name = program.intern_str("name");
    let provide_file = program.intern_str("provide.file");
    let provide_yaml = program.intern_str("provide.yaml");
    program.register_native_func(provide_file, &[options, name]);
    program.register_native_func(provide_yaml, &[options, name]);
    let app_id_value = program.value_to_thunk(&Value::string(app_id));
    let app_id_name = program.intern_str("appId");
    program.add_ext_var(app_id_name, &app_id_value);
    let mut env = Env {
        sources: Vec::new(),
        imports: HashMap::new(),
        failure: None,
        expand,
        provide_file,
        provide_yaml,
    };
    let fail = |message: String| AppsError::Definition {
        location: path.display().to_string(),
        message,
    };
    if !path.exists() {
        return Err(AppsError::Io {
            path: path.display().to_string(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    let thunk = load(&mut program, &mut env, path).map_err(fail)?;
    let value = program
        .eval_value(&thunk, &mut env)
        .map_err(|e| fail(describe_eval(&program, &env, &e)))?;
    let json = program
        .manifest_json(&value, false)
        .map_err(|e| fail(describe_eval(&program, &env, &e)))?;
    serde_json::from_str(&json).map_err(|e| fail(format!("evaluated to invalid JSON: {e}")))
}

impl<'p> Callbacks<'p> for Env<'p> {
    fn import(
        &mut self,
        program: &mut Program<'p>,
        from: SpanId,
        path: &str,
    ) -> Result<Thunk<'p>, ImportError> {
        let full = self.resolve(program, from, path);
        let key = std::fs::canonicalize(&full).unwrap_or_else(|_| full.clone());
        if let Some(t) = self.imports.get(&key) {
            return Ok(t.clone());
        }
        match load(program, self, &full) {
            Ok(t) => {
                self.imports.insert(key, t.clone());
                Ok(t)
            }
            Err(message) => {
                self.failure = Some(message);
                Err(ImportError)
            }
        }
    }

    fn import_str(
        &mut self,
        program: &mut Program<'p>,
        from: SpanId,
        path: &str,
    ) -> Result<String, ImportError> {
        let full = self.resolve(program, from, path);
        std::fs::read_to_string(&full).map_err(|e| {
            self.failure = Some(format!("{}: {e}", full.display()));
            ImportError
        })
    }

    fn import_bin(
        &mut self,
        program: &mut Program<'p>,
        from: SpanId,
        path: &str,
    ) -> Result<Vec<u8>, ImportError> {
        let full = self.resolve(program, from, path);
        std::fs::read(&full).map_err(|e| {
            self.failure = Some(format!("{}: {e}", full.display()));
            ImportError
        })
    }

    fn trace(&mut self, _program: &mut Program<'p>, message: &str, _: &[EvalStackTraceItem]) {
        tracing::info!(target: "kondate_apps::jsonnet", "std.trace: {message}");
    }

    fn native_call(
        &mut self,
        _program: &mut Program<'p>,
        name: InternedStr<'p>,
        args: &[Value<'p>],
    ) -> Result<Value<'p>, NativeError> {
        let kind = if name == self.provide_file {
            "file"
        } else if name == self.provide_yaml {
            "yaml"
        } else {
            self.failure = Some(format!("unknown native function `{}`", name.value()));
            return Err(NativeError);
        };
        let (Some(options), Some(key)) = (
            args.first().and_then(Value::to_string),
            args.get(1).and_then(Value::to_string),
        ) else {
            self.failure = Some(format!(
                "provide.{kind} takes two strings: std.toString({{path: 'FILE'}}) and a key"
            ));
            return Err(NativeError);
        };
        // Paths in provider options are relative to the definition's folder, as in Hako.
        let root = self
            .sources
            .first()
            .and_then(|s| s.path.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        match crate::providers::provide(kind, &root, &options, &key) {
            Ok(value) if self.expand => Ok(Value::string(&value)),
            Ok(_) => Ok(Value::string(&format!("${{{key}}}"))),
            Err(message) => {
                self.failure = Some(message);
                Err(NativeError)
            }
        }
    }
}

fn lex_span(e: &LexError) -> SpanId {
    use LexError::*;
    match e {
        InvalidChar { span, .. }
        | InvalidUtf8 { span, .. }
        | UnfinishedMultilineComment { span }
        | LeadingZeroInNumber { span }
        | MissingFracDigits { span }
        | MissingExpDigits { span }
        | MissingDigitAfterUnderscore { span }
        | ExpOverflow { span }
        | InvalidEscapeInString { span, .. }
        | IncompleteUnicodeEscape { span }
        | InvalidUtf16EscapeSequence { span, .. }
        | UnfinishedString { span }
        | MissingLineBreakAfterTextBlockStart { span }
        | MissingWhitespaceTextBlockStart { span }
        | InvalidTextBlockTermination { span } => *span,
    }
}

/// The variant name of a library error, as words: `UnfinishedString` → "unfinished string".
fn words(debug: &str) -> String {
    let name: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn describe_load(program: &Program<'_>, env: &Env<'_>, e: &LoadError) -> String {
    match e {
        LoadError::Lex(l) => format!(
            "{}: syntax error: {}",
            env.locate(program, lex_span(l)),
            words(&format!("{l:?}"))
        ),
        LoadError::Parse(ParseError::Expected {
            span,
            expected,
            instead,
        }) => {
            let expected: Vec<String> = expected.iter().map(|t| format!("{t:?}")).collect();
            format!(
                "{}: syntax error: expected {} but found {instead:?}",
                env.locate(program, *span),
                expected.join(" or ")
            )
        }
        LoadError::Analyze(a) => {
            let (span, what) = match a {
                AnalyzeError::UnknownVariable { span, name } => {
                    (*span, format!("unknown variable `{name}`"))
                }
                AnalyzeError::SelfOutsideObject { self_span } => {
                    (*self_span, "`self` outside an object".into())
                }
                AnalyzeError::SuperOutsideObject { super_span } => {
                    (*super_span, "`super` outside an object".into())
                }
                AnalyzeError::DollarOutsideObject { dollar_span } => {
                    (*dollar_span, "`$` outside an object".into())
                }
                AnalyzeError::RepeatedLocalName {
                    repeated_span,
                    name,
                    ..
                } => (*repeated_span, format!("local `{name}` defined twice")),
                AnalyzeError::RepeatedFieldName {
                    repeated_span,
                    name,
                    ..
                } => (*repeated_span, format!("field `{name}` defined twice")),
                AnalyzeError::RepeatedParamName {
                    repeated_span,
                    name,
                    ..
                } => (*repeated_span, format!("parameter `{name}` given twice")),
                AnalyzeError::PositionalArgAfterNamed { arg_span } => {
                    (*arg_span, "positional argument after a named one".into())
                }
                AnalyzeError::TextBlockAsImportPath { span }
                | AnalyzeError::ComputedImportPath { span } => (
                    *span,
                    "an import path must be a plain string literal".into(),
                ),
            };
            format!("{}: {what}", env.locate(program, span))
        }
    }
}

/// Where the error itself happened, for the kinds that say.
fn kind_span(kind: &EvalErrorKind) -> Option<SpanId> {
    use EvalErrorKind::*;
    match kind {
        InvalidIndexedType { span, .. }
        | InvalidSlicedType { span, .. }
        | StringIndexIsNotNumber { span, .. }
        | ArrayIndexIsNotNumber { span, .. }
        | NumericIndexOutOfRange { span, .. }
        | ObjectIndexIsNotString { span, .. }
        | RepeatedFieldName { span, .. }
        | FieldNameIsNotString { span, .. }
        | UnknownObjectField { span, .. }
        | FieldOfNonObject { span }
        | CondIsNotBool { span, .. }
        | AssertFailed { span, .. }
        | ExplicitError { span, .. }
        | ImportFailed { span, .. } => Some(*span),
        CalleeIsNotFunction { span, .. }
        | TooManyCallArgs { span, .. }
        | UnknownCallParam { span, .. }
        | CallParamNotBound { span, .. }
        | InvalidBinaryOpTypes { span, .. }
        | DivByZero { span }
        | Other { span, .. } => *span,
        _ => None,
    }
}

fn describe_eval(program: &Program<'_>, env: &Env<'_>, e: &EvalError) -> String {
    // The innermost frame with a position says where; the object fields on the stack say
    // which field was being evaluated.
    let at = kind_span(&e.kind).or_else(|| {
        e.stack_trace.iter().find_map(|item| match item {
            EvalStackTraceItem::Expr { span }
            | EvalStackTraceItem::Variable { span, .. }
            | EvalStackTraceItem::Import { span } => Some(*span),
            EvalStackTraceItem::Call { span, .. }
            | EvalStackTraceItem::ArrayItem { span, .. }
            | EvalStackTraceItem::ObjectField { span, .. } => *span,
            _ => None,
        })
    });
    let fields: Vec<String> = e
        .stack_trace
        .iter()
        .filter_map(|item| match item {
            EvalStackTraceItem::ObjectField { name, .. }
            | EvalStackTraceItem::ManifestObjectField { name } => Some(name.clone()),
            EvalStackTraceItem::ArrayItem { index, .. }
            | EvalStackTraceItem::ManifestArrayItem { index } => Some(format!("[{index}]")),
            _ => None,
        })
        .collect();
    // The stack lists the outermost field first.
    let field = fields.join(".").replace(".[", "[");
    let what = match &e.kind {
        EvalErrorKind::UnknownObjectField { field_name, .. } => {
            format!("the object has no field `{field_name}`")
        }
        EvalErrorKind::ExplicitError { message, .. } => format!("error: {message}"),
        EvalErrorKind::AssertFailed { message, .. } => match message {
            Some(m) => format!("assertion failed: {m}"),
            None => "assertion failed".into(),
        },
        EvalErrorKind::ImportFailed { path, .. } => format!(
            "cannot import `{path}`: {}",
            env.failure.as_deref().unwrap_or("not found")
        ),
        EvalErrorKind::NativeCallFailed => env
            .failure
            .clone()
            .unwrap_or_else(|| "a native function failed".into()),
        EvalErrorKind::UnknownExtVar { name } => {
            format!("unknown external variable `{name}` (kondate sets only `appId`, as Hako does)")
        }
        EvalErrorKind::InvalidBinaryOpTypes {
            op,
            lhs_type,
            rhs_type,
            ..
        } => format!("cannot apply {op:?} to {lhs_type:?} and {rhs_type:?}"),
        EvalErrorKind::CallParamNotBound { param_name, .. } => {
            format!("argument `{param_name}` is missing")
        }
        EvalErrorKind::Other { message, .. } => message.clone(),
        other => words(&format!("{other:?}")),
    };
    let mut out = String::new();
    if let Some(span) = at {
        out.push_str(&env.locate(program, span));
        out.push_str(": ");
    }
    if !field.is_empty() {
        out.push_str(&format!("in field `{field}`: "));
    }
    out.push_str(&what);
    out
}
