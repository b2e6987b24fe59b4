import { describe, expect, test } from "bun:test"
import { folderNames, keyNames, nameProblem } from "../../schemas/DeliveryName.ts"

describe("the name rule", () => {
  test("names partners really use pass: accents, spaces, +, a literal %2E, exactly 128 bytes", () => {
    for (const name of ["acme-gestion", "agence côte", "relevé 1+1 %2B", "%2E%2E", "2026-11-01", "é".repeat(64), "x".repeat(128), "..."]) {
      expect([name, nameProblem(name)]).toEqual([name, undefined])
    }
  })

  test("each way of breaking it is named", () => {
    expect(nameProblem("")).toBe("it is empty")
    expect(nameProblem(".")).toBe("it is a relative path segment")
    expect(nameProblem("..")).toBe("it is a relative path segment")
    expect(nameProblem("x".repeat(129))).toBe("it is 129 bytes long")
    expect(nameProblem("é".repeat(65))).toBe("it is 130 bytes long")
    for (const name of ["a\u0000", "a\nb", "a\tb", "\u001b[31m", "a\u007f", "a\u0085"]) {
      expect([name, nameProblem(name)]).toEqual([name, "it holds a control character"])
    }
    expect(nameProblem("a\\b")).toBe("it holds a backslash")
  })

  test("keys: a delivery's files, things outside, and refusals that name the key", () => {
    expect(keyNames("incoming/acme/d1/properties.json", "incoming/")).toEqual({
      _tag: "Named", prefix: "incoming/acme/d1/", partner: "acme", delivery: "d1"
    })
    expect(keyNames("incoming/acme/d1/", "incoming/")._tag).toBe("Named")
    for (const key of ["success/acme/d1/a.json", "incoming/stray.json", "incoming/acme/", "incoming/acme"]) {
      expect([key, keyNames(key, "incoming/")._tag]).toEqual([key, "Outside"])
    }
    expect(keyNames("incoming/acme/d1/sub/../../../x.json", "incoming/")).toEqual({
      _tag: "Refused",
      prefix: "incoming/acme/d1/",
      reason: `object key "incoming/acme/d1/sub/../../../x.json": the file path segment ".." is refused (it is a relative path segment); ` +
        `file paths inside a delivery must have no "." or ".." segment, control character or backslash`
    })
    expect(keyNames("drops/in/../d/a.json", "drops/in/")).toMatchObject({ _tag: "Refused", prefix: "drops/in/../d/" })
  })

  test("folder prefixes: exactly <incoming><partner>/<delivery>/", () => {
    expect(folderNames("incoming/acme/d1/", "incoming/")._tag).toBe("Named")
    expect(folderNames("incoming/acme/d1", "incoming/")._tag).toBe("Outside")
    expect(folderNames("incoming/acme/d1/sub/", "incoming/")._tag).toBe("Outside")
    expect(folderNames("incoming/../d1/", "incoming/")._tag).toBe("Refused")
  })
})
