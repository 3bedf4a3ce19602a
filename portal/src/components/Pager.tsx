/** Page-token paging: a stack of the tokens of the pages seen, with previous/next buttons. */
import { useState } from "react";

export function usePageTokens() {
  const [tokens, setTokens] = useState<(string | undefined)[]>([undefined]);
  const token = tokens[tokens.length - 1];
  return {
    token,
    page: tokens.length,
    next: (nextToken: string) => setTokens((t) => [...t, nextToken]),
    previous: () => setTokens((t) => (t.length > 1 ? t.slice(0, -1) : t)),
    reset: () => setTokens([undefined]),
  };
}

export function Pager({
  label,
  page,
  nextToken,
  onNext,
  onPrevious,
}: {
  label: string;
  page: number;
  nextToken?: string | null;
  onNext: (token: string) => void;
  onPrevious: () => void;
}) {
  if (page === 1 && !nextToken) return null;
  return (
    <nav className="pager" aria-label={`${label} pages`}>
      <button type="button" onClick={onPrevious} disabled={page === 1}>
        Previous page
      </button>
      <span>Page {page}</span>
      <button type="button" onClick={() => nextToken && onNext(nextToken)} disabled={!nextToken}>
        Next page
      </button>
    </nav>
  );
}
