// Lint TypeScript sources, tests and benches with the type-aware recommended rules.
import js from '@eslint/js'
import globals from 'globals'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'logs/**', 'run/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['example/public/**/*.js', 'client/**/*.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
      // Busy-wait loops are the point of some test fixtures (blocking the event loop on purpose).
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
)
