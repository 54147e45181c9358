/** A file system entry to create inside an image root, relative to it (no leading `/`). */
export type TreeEntry =
  | { readonly type: 'dir'; readonly path: string; readonly mode: number }
  | { readonly type: 'file'; readonly path: string; readonly mode: number; readonly content: string }
  | { readonly type: 'symlink'; readonly path: string; readonly target: string };
