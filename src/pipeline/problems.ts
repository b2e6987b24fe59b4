import { Duration } from "effect"
import type { Dataset } from "../../schemas/Dataset.ts"
import type { DecompressError, JsonSyntaxError } from "../stream/RawRecord.ts"
import type { FileProblem } from "./Report.ts"

/**
 * File- and delivery-level problems a partner can cause, with the message they read. Record-level
 * messages come from the dataset schemas; these cover what happens around them.
 */
export const problems = {
  malformedJson: (error: JsonSyntaxError): FileProblem => ({
    rule: "json.syntax",
    line: error.line,
    column: error.column,
    offset: error.offset,
    message: {
      en: `The file is not valid JSON at line ${error.line}, column ${error.column} (byte ${error.offset}): ${error.reason}. Records after this point were not read.`,
      fr: `Le fichier n'est pas un JSON valide à la ligne ${error.line}, colonne ${error.column} (octet ${error.offset}) : ${error.reason}. Les enregistrements suivants n'ont pas été lus.`
    }
  }),
  corruptGzip: (error: DecompressError): FileProblem => ({
    rule: "gzip.corrupt",
    message: {
      en: `The file cannot be decompressed (gzip): ${error.reason}. Compress it again and re-deposit the delivery.`,
      fr: `Le fichier ne peut pas être décompressé (gzip) : ${error.reason}. Compressez-le à nouveau et redéposez la livraison.`
    }
  }),
  unknownDataset: (file: string, known: ReadonlyArray<string>): FileProblem => ({
    rule: "file.unknown_dataset",
    message: {
      en: `No dataset matches the file "${file}". Name it after its dataset (${known.join(", ")}) or declare its dataset in _manifest.json.`,
      fr: `Aucun jeu de données ne correspond au fichier « ${file} ». Nommez-le d'après son jeu de données (${known.join(", ")}) ou déclarez-le dans _manifest.json.`
    }
  }),
  datasetNotAllowed: (file: string, dataset: string, allowed: ReadonlyArray<string>): FileProblem => ({
    rule: "file.dataset_not_allowed",
    message: {
      en: `The file "${file}" holds dataset "${dataset}", which your contract does not allow you to deliver (allowed: ${
        allowed.join(", ") || "none"
      }). Ask us to add it to your contract, or remove the file.`,
      fr: `Le fichier « ${file} » contient le jeu de données « ${dataset} », que votre contrat ne vous permet pas de livrer (autorisés : ${
        allowed.join(", ") || "aucun"
      }). Demandez-nous de l'ajouter à votre contrat, ou retirez le fichier.`
    }
  }),
  unknownVersion: (dataset: Dataset, version: number): FileProblem => ({
    rule: "file.unknown_version",
    message: {
      en: `_manifest.json says the file follows version ${version} of dataset "${dataset.name}", which we do not read: versions ${
        dataset.versions.join(", ")
      } are (${dataset.version} is current).`,
      fr: `_manifest.json indique que le fichier suit la version ${version} du jeu de données « ${dataset.name} », que nous ne lisons pas : les versions ${
        dataset.versions.join(", ")
      } le sont (${dataset.version} est l'actuelle).`
    }
  }),
  unknownFormat: (file: string): FileProblem => ({
    rule: "file.unknown_format",
    message: {
      en: `The file "${file}" is not a data file we read: use .json, .ndjson or .jsonl, optionally gzipped (.gz).`,
      fr: `Le fichier « ${file} » n'est pas un fichier de données lisible : utilisez .json, .ndjson ou .jsonl, éventuellement compressé (.gz).`
    }
  }),
  missingFile: (file: string): FileProblem => ({
    rule: "manifest.missing_file",
    message: {
      en: `_manifest.json lists "${file}" but the delivery does not contain it.`,
      fr: `_manifest.json mentionne « ${file} » mais la livraison ne le contient pas.`
    }
  }),
  sizeMismatch: (expected: number, actual: number): FileProblem => ({
    rule: "manifest.size_mismatch",
    message: {
      en: `The file has ${actual} bytes but _manifest.json announces ${expected}: it may be truncated.`,
      fr: `Le fichier fait ${actual} octets alors que _manifest.json en annonce ${expected} : il est peut-être tronqué.`
    }
  }),
  checksumMismatch: (expected: string, actual: string): FileProblem => ({
    rule: "manifest.checksum_mismatch",
    message: {
      en: `The file's SHA-256 is ${actual} but _manifest.json announces ${expected}: it was altered or truncated.`,
      fr: `Le SHA-256 du fichier est ${actual} alors que _manifest.json annonce ${expected} : il a été modifié ou tronqué.`
    }
  }),
  recordCountMismatch: (expected: number, actual: number): FileProblem => ({
    rule: "manifest.record_count_mismatch",
    message: {
      en: `The file holds ${actual} records but _manifest.json announces ${expected}.`,
      fr: `Le fichier contient ${actual} enregistrements alors que _manifest.json en annonce ${expected}.`
    }
  }),
  invalidManifest: (details: string): FileProblem => ({
    rule: "manifest.invalid",
    message: {
      en: `_manifest.json is not valid: ${details}`,
      fr: `_manifest.json n'est pas valide : ${details}`
    }
  })
} as const

/** Why a delivery failed, for the report's headline. */
export const reasons = {
  policy: (invalid: number, read: number, policy: string) => ({
    en: `${invalid} of ${read} records were rejected, which the "${policy}" error policy does not allow: nothing of this delivery was loaded.`,
    fr: `${invalid} enregistrements sur ${read} ont été rejetés, ce que la règle d'erreur « ${policy} » n'autorise pas : rien de cette livraison n'a été chargé.`
  }),
  problem: (file: string, problem: FileProblem) => ({
    en: `${file}: ${problem.message.en} Nothing of this delivery was loaded.`,
    fr: `${file} : ${problem.message.fr} Rien de cette livraison n'a été chargé.`
  }),
  abandoned: (lastObject: Date, expiry: Duration.Duration) => ({
    en: `This delivery was opened through the API but never completed: nothing arrived for ${Duration.format(expiry)} since ${lastObject.toISOString()}, so it was given up and nothing was loaded. Send it again and call complete once every file is there.`,
    fr: `Cette livraison a été ouverte par l'API mais jamais terminée : rien n'est arrivé pendant ${Duration.format(expiry)} depuis ${lastObject.toISOString()}, elle a donc été abandonnée et rien n'a été chargé. Envoyez-la à nouveau et appelez complete une fois tous les fichiers présents.`
  }),
  duplicate: (runId: string) => ({
    en: `These files are identical to a delivery already loaded (run ${runId}): nothing was loaded again.`,
    fr: `Ces fichiers sont identiques à une livraison déjà chargée (exécution ${runId}) : rien n'a été rechargé.`
  })
} as const
