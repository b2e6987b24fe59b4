import { describe, expect, test } from "bun:test"
import { canonical, childOf, place } from "../../src/sftp/paths.ts"

const prefixes = { incoming: "incoming/", success: "success/", failure: "failure/" }
const at = (path: string) => place(path, "acme", prefixes)

describe("a partner's SFTP tree", () => {
  test("its folders map onto the partner's own prefixes of the bucket", () => {
    expect(at("/")).toEqual({ _tag: "Root" })
    expect(at("//")).toEqual({ _tag: "Root" })
    expect(at("/incoming")).toMatchObject({ _tag: "Area", area: "incoming", segments: [], key: "incoming/acme" })
    expect(at("/incoming/d 1+é/sub/f.json")).toMatchObject({
      _tag: "Area",
      area: "incoming",
      segments: ["d 1+é", "sub", "f.json"],
      key: "incoming/acme/d 1+é/sub/f.json",
      path: "/incoming/d 1+é/sub/f.json"
    })
    expect(at("success/d/run-1/_report.json")).toMatchObject({ area: "success", key: "success/acme/d/run-1/_report.json" })
    expect(at("/failure/d/")).toMatchObject({ area: "failure", key: "failure/acme/d", path: "/failure/d" })
    // Another partner's name is only a delivery folder of this partner's.
    expect(at("/incoming/immo/d/f.json")).toMatchObject({ key: "incoming/acme/immo/d/f.json" })
  })

  test("paths that climb, leave the tree or break the name rule are refused with the reason", () => {
    const refused: Array<[string, string]> = [
      ["/incoming/../immo/incoming/d/f.json", "are not allowed"],
      ["/incoming/d/./f.json", "are not allowed"],
      ["/..", "are not allowed"],
      ["/etc/passwd", "only /incoming, /success and /failure exist"],
      ["/immo/incoming/d/f.json", "only /incoming, /success and /failure exist"],
      ["/incoming/a\tb", "control character"],
      [`/incoming/${"x".repeat(129)}`, "129 bytes long"],
      ["/incoming/d/a\\b.json", "backslash"],
      ["/incoming/d/f\u0000.json", "control character"]
    ]
    for (const [path, reason] of refused) {
      const found = at(path)
      expect([path, found._tag]).toEqual([path, "Refused"])
      expect([path, found._tag === "Refused" ? found.reason : ""]).toEqual([path, expect.stringContaining(reason)])
    }
  })

  test("REALPATH resolves . and .. without ever going above /", () => {
    expect(canonical(".")).toBe("/")
    expect(canonical("")).toBe("/")
    expect(canonical("/incoming/d/..")).toBe("/incoming")
    expect(canonical("incoming/./d")).toBe("/incoming/d")
    expect(canonical("/../../..")).toBe("/")
    expect(canonical("/incoming/../../success")).toBe("/success")
  })

  test("the entry directly below a folder that an object key falls under", () => {
    expect(childOf("incoming/acme/", "incoming/acme/d1/f.json")).toEqual({ name: "d1", folder: true })
    expect(childOf("incoming/acme/d1/", "incoming/acme/d1/f.json")).toEqual({ name: "f.json", folder: false })
    expect(childOf("incoming/acme/", "incoming/acmes/d/f")).toBeUndefined()
    expect(childOf("incoming/acme/", "incoming/acme/")).toBeUndefined()
  })
})
