// Lint: typescript-eslint's recommended rules; formatting is prettier's job.
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: [
      ".tmp/**",
      "dist/**",
      "docs/**",
      "node_modules/**",
      "coverage/**",
      "**/*.generated.ts",
      "examples/**/public/**",
    ],
  },
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-explicit-any": "error",
    },
  },
);
