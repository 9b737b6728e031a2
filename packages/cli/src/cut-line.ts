/** One line of output no wider than `width`: line breaks flattened to spaces, an ellipsis where it is cut. */
export function cutLine(line: string, width: number): string {
  const flat = line.replace(/\s*\n\s*/g, ' ');
  return flat.length <= width ? flat : `${flat.slice(0, width - 1)}…`;
}
