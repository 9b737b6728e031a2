#!/usr/bin/env node
// The public API of every published package, as a text report per entry point (root and
// subpath exports), compared with the checked-in copy in docs/api/ by
// test/public-api.test.ts. A change to what a package exports, or to an exported
// signature, shows up as a diff there; accept it on purpose with
//
//   npm run api:update
//
// Built on the TypeScript compiler API rather than @microsoft/api-extractor: it needs no
// new dependency, reads the sources (no build first), and handles subpath exports, which
// api-extractor reports one entry point per configuration.
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Where the checked-in reports live. */
export const reportDir = join(root, 'docs', 'api');

/** Every published package's entry points: { pkg, subpath, file, report }. */
export function entryPoints() {
  const out = [];
  for (const dir of readdirSync(join(root, 'packages')).sort()) {
    const manifestPath = join(root, 'packages', dir, 'package.json');
    if (!existsSync(manifestPath)) continue;
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    if (manifest.private) continue;
    for (const [subpath, target] of Object.entries(manifest.exports ?? {})) {
      const types = typeof target === 'object' ? target.types : undefined;
      if (!types) continue;
      const m = /^\.\/dist\/(.+)\.d\.ts$/.exec(types);
      if (!m) throw new Error(`${manifest.name} ${subpath}: types ${types} is not ./dist/<entry>.d.ts`);
      const file = join(root, 'packages', dir, 'src', `${m[1]}.ts`);
      const name = subpath === '.' ? manifest.name : `${manifest.name}/${subpath.slice(2)}`;
      out.push({ name, file, report: `${name.replace(/^@/, '').replace(/\//g, '-')}.md` });
    }
  }
  return out;
}

const printer = ts.createPrinter({ removeComments: true, newLine: ts.NewLineKind.LineFeed });
const flags = ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.UseFullyQualifiedType;

function isPublicMember(member) {
  const mods = ts.getCombinedModifierFlags(member);
  if (mods & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) return false;
  return !(member.name && ts.isPrivateIdentifier(member.name));
}

function describe(checker, exportName, symbol) {
  const decl = symbol.declarations?.[0];
  if (!decl) return `${exportName}: (no declaration)`;
  const from = decl.getSourceFile().fileName;
  if (from.includes('/node_modules/')) {
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(from)?.[1];
    return `export { ${symbol.name === exportName ? exportName : `${symbol.name} as ${exportName}`} } from '${pkg}'`;
  }
  const sf = decl.getSourceFile();
  if (ts.isFunctionDeclaration(decl)) {
    const type = checker.getTypeOfSymbol(symbol);
    return type
      .getCallSignatures()
      .map((sig) => `function ${exportName}${checker.signatureToString(sig, decl, flags)}`)
      .join('\n');
  }
  if (ts.isVariableDeclaration(decl)) {
    return `const ${exportName}: ${checker.typeToString(checker.getTypeOfSymbol(symbol), decl, flags)}`;
  }
  if (ts.isClassDeclaration(decl)) {
    const heritage = decl.heritageClauses?.map((h) => printer.printNode(ts.EmitHint.Unspecified, h, sf)).join(' ');
    const lines = [`class ${exportName}${heritage ? ` ${heritage.trim()}` : ''} {`];
    for (const member of decl.members) {
      if (!isPublicMember(member)) continue;
      if (ts.isMethodDeclaration(member) || ts.isConstructorDeclaration(member)) {
        const sig = checker.getSignatureFromDeclaration(member);
        const name = ts.isConstructorDeclaration(member) ? 'constructor' : member.name.getText(sf);
        const isStatic = ts.getCombinedModifierFlags(member) & ts.ModifierFlags.Static ? 'static ' : '';
        lines.push(`  ${isStatic}${name}${checker.signatureToString(sig, member, flags)};`);
      } else if (ts.isPropertyDeclaration(member)) {
        const type = checker.typeToString(checker.getTypeAtLocation(member), member, flags);
        const ro = ts.getCombinedModifierFlags(member) & ts.ModifierFlags.Readonly ? 'readonly ' : '';
        lines.push(`  ${ro}${member.name.getText(sf)}${member.questionToken ? '?' : ''}: ${type};`);
      }
    }
    lines.push('}');
    return lines.join('\n');
  }
  // Interfaces, type aliases, enums: their declaration as written, without comments.
  return printer.printNode(ts.EmitHint.Unspecified, decl, sf).replace(/^export (declare )?/, '');
}

/** True when the declaration carries a doc comment. */
function documented(checker, symbol) {
  return symbol.getDocumentationComment(checker).length > 0 || ts.getJSDocTags(symbol.declarations?.[0] ?? {}).length > 0;
}

/**
 * The members of an exported interface or class without a doc comment, as 'Type.member'.
 * A member inherited from another declaration is checked where it is declared.
 */
function undocumentedMembers(checker, exportName, symbol) {
  const out = [];
  for (const decl of symbol.declarations ?? []) {
    if (!ts.isInterfaceDeclaration(decl) && !ts.isClassDeclaration(decl)) continue;
    for (const member of decl.members) {
      if (ts.isClassDeclaration(decl) && !isPublicMember(member)) continue;
      if (ts.isConstructorDeclaration(member) || ts.isIndexSignatureDeclaration(member) || !member.name) continue;
      if (ts.isClassStaticBlockDeclaration?.(member)) continue;
      const memberSymbol = checker.getSymbolAtLocation(member.name);
      if (memberSymbol && documented(checker, memberSymbol)) continue;
      out.push(`${exportName}.${member.name.getText(decl.getSourceFile())}`);
    }
  }
  return out;
}

/**
 * Builds every entry point's report. Returns { reports: Map<file, text>, undocumented: string[] }
 * (undocumented: exports, and members of exported interfaces and classes, without TSDoc,
 * as 'package: name' or 'package: Type.member').
 */
export function buildReports() {
  const entries = entryPoints();
  const program = ts.createProgram(
    entries.map((e) => e.file),
    {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      skipLibCheck: true,
      noEmit: true,
      types: ['node'],
    },
  );
  const checker = program.getTypeChecker();
  const reports = new Map();
  const undocumented = [];
  for (const entry of entries) {
    const sf = program.getSourceFile(entry.file);
    if (!sf) throw new Error(`${entry.name}: no source file ${entry.file}`);
    const moduleSymbol = checker.getSymbolAtLocation(sf);
    const exports = moduleSymbol ? checker.getExportsOfModule(moduleSymbol) : [];
    const blocks = [];
    for (const exp of [...exports].sort((a, b) => a.name.localeCompare(b.name))) {
      const symbol = exp.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exp) : exp;
      const fromNodeModules = symbol.declarations?.[0]?.getSourceFile().fileName.includes('/node_modules/');
      if (!fromNodeModules && !documented(checker, symbol)) undocumented.push(`${entry.name}: ${exp.name}`);
      if (!fromNodeModules) {
        for (const m of undocumentedMembers(checker, exp.name, symbol)) undocumented.push(`${entry.name}: ${m}`);
      }
      blocks.push(describe(checker, exp.name, symbol));
    }
    const text = [
      `# ${entry.name}`,
      '',
      'Generated by `npm run api:update` (scripts/api-report.mjs); checked by test/public-api.test.ts.',
      '',
      '```ts',
      blocks.join('\n\n'),
      '```',
      '',
    ].join('\n');
    reports.set(entry.report, text);
  }
  return { reports, undocumented };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { reports, undocumented } = buildReports();
  mkdirSync(reportDir, { recursive: true });
  for (const [file, text] of reports) writeFileSync(join(reportDir, file), text);
  process.stdout.write(`api-report: wrote ${reports.size} reports to docs/api/\n`);
  if (undocumented.length) process.stdout.write(`api-report: exports without TSDoc:\n  ${undocumented.join('\n  ')}\n`);
}
