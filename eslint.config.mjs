// ESLint for both packages, the scripts and the tests: typescript-eslint's recommended rules, import cycles as errors, no style rules (Prettier's job).
import js from '@eslint/js'
import prettier from 'eslint-config-prettier'
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript'
import importX from 'eslint-plugin-import-x'
import globals from 'globals'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['**/dist/', '**/node_modules/', 'bench-results/', '.tap/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: globals.node },
    plugins: { 'import-x': importX },
    settings: {
      // Files whose imports the cycle check reads, and the parser it reads the TypeScript ones with.
      'import-x/extensions': ['.ts', '.mts', '.js', '.mjs'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts', '.mts'] },
      // Resolves `./x.js` to `./x.ts`, as TypeScript's NodeNext does, so that the cycle check sees every edge.
      'import-x/resolver-next': [
        createTypeScriptImportResolver({ project: ['packages/*/tsconfig.json', 'tsconfig.json'], noWarnOnMultipleProjects: true }),
      ],
    },
    rules: {
      // A runtime import cycle. It cannot see cycles made only of `import type` (the rule skips those by design):
      // `npm run lint:cycles` (dpdm) checks the type-level graph too.
      'import-x/no-cycle': 'error',
      // `_name` marks a parameter a signature needs and the body does not use.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // A proxy matches control bytes on purpose: escaping log fields, refusing reason phrases, fuzzing.
      'no-control-regex': 'off',
    },
  },
  prettier,
)
