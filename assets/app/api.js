// The transport: one JSON request to the relay's REST API. It reports failures as an
// `ApiError` with the HTTP status (0 when the relay cannot be reached) and leaves what to do
// about them, a 401 included, to the caller.
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Sends `method path` with an optional JSON `body` and bearer `token`; resolves to the JSON answer. */
export async function request(method, path, body, token) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res, raw;
  try {
    res = await fetch(path, init);
    raw = await res.text();
  } catch (err) {
    throw new ApiError(0, "the relay cannot be reached (" + ((err && err.message) || err) + ")");
  }
  let data = null;
  try {
    data = raw ? JSON.parse(raw) : null;
  } catch (e) {
    data = null;
  }
  if (res.status === 401) {
    throw new ApiError(401, (data && data.error) || "a token is required");
  }
  if (!res.ok) {
    throw new ApiError(res.status, (data && data.error) || raw || "HTTP " + res.status);
  }
  return data;
}
