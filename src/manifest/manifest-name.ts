/** The manifest's default file name, in the project folder. */
export const MANIFEST_NAME = 'orchestrator.yaml';
