// A small typed client for supagate, using only `fetch` and the types generated from
// /openapi.json (examples/supagate-api.d.ts). Works in Next.js server components, route
// handlers, client components and React Native alike.
import type { components, operations, paths } from "./supagate-api";

export type Item = components["schemas"]["Item"];
export type ItemInput = components["schemas"]["ItemInput"];
export type ApiErrorBody = components["schemas"]["ErrorBody"];
export type ListItemsQuery = NonNullable<operations["listItems"]["parameters"]["query"]>;

/** supagate's error body, thrown by every helper below on a non-2xx answer. */
export class SupagateError extends Error {
  constructor(
    public readonly status: number,
    public readonly body: ApiErrorBody,
    public readonly requestId: string | null,
  ) {
    super(body.error);
  }

  get code(): string {
    return this.body.code;
  }

  /** zod `flatten()` field errors of a `validation_failed` answer (else `{}`). */
  get fieldErrors(): Record<string, string[]> {
    const details = this.body.details as { fieldErrors?: Record<string, string[]> } | undefined;
    return this.code === "validation_failed" ? details?.fieldErrors ?? {} : {};
  }
}

export interface ClientOptions {
  /** e.g. `https://api.example.com` or `""` for same-origin calls through a rewrite. */
  baseUrl: string;
  /** The Supabase access token (`(await supabase.auth.getSession()).data.session?.access_token`).
   *  Leave undefined to rely on the `@supabase/ssr` cookie (same site, `credentials: "include"`). */
  accessToken?: () => Promise<string | undefined> | string | undefined;
}

export function createClient({ baseUrl, accessToken }: ClientOptions) {
  async function call<T>(path: string, init: RequestInit = {}): Promise<{ data: T; headers: Headers }> {
    const headers = new Headers(init.headers);
    const token = typeof accessToken === "function" ? await accessToken() : undefined;
    if (token) headers.set("Authorization", `Bearer ${token}`);
    if (init.body !== undefined) headers.set("Content-Type", "application/json");
    const res = await fetch(baseUrl + path, { ...init, headers, credentials: "include" });
    if (!res.ok) {
      const body = (await res.json().catch(() => ({ error: res.statusText, code: "unknown" }))) as ApiErrorBody;
      throw new SupagateError(res.status, body, res.headers.get("X-Request-Id"));
    }
    const data = (res.status === 204 ? undefined : await res.json()) as T;
    return { data, headers: res.headers };
  }

  return {
    /** A page of items plus the total for pagination (`X-Total-Count`). */
    async listItems(query: ListItemsQuery = {}): Promise<{ items: Item[]; total: number }> {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(query)) {
        if (value !== undefined) params.set(key, String(value));
      }
      const qs = params.toString();
      type Ok = paths["/api/items"]["get"]["responses"][200]["content"]["application/json"];
      const { data, headers } = await call<Ok>(`/api/items${qs ? `?${qs}` : ""}`);
      return { items: data, total: Number(headers.get("X-Total-Count") ?? data.length) };
    },

    async createItem(input: ItemInput): Promise<Item> {
      return (await call<Item>("/api/items", { method: "POST", body: JSON.stringify(input) })).data;
    },

    async deleteItem(id: string): Promise<void> {
      await call<void>(`/api/items/${encodeURIComponent(id)}`, { method: "DELETE" });
    },
  };
}

// Usage in a Next.js client component with @supabase/ssr's browser client:
//
//   const supabase = createBrowserClient(url, anonKey);
//   const api = createClient({
//     baseUrl: process.env.NEXT_PUBLIC_SUPAGATE_URL!,
//     accessToken: async () => (await supabase.auth.getSession()).data.session?.access_token,
//   });
//   try {
//     await api.createItem({ name, price });
//   } catch (e) {
//     if (e instanceof SupagateError && e.code === "validation_failed") setErrors(e.fieldErrors);
//     else throw e;
//   }
