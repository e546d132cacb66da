// Drives vista with the unmodified Node clients (Google's REST "fallback" transport and AWS SDK v3) and
// prints what they parsed as one JSON object; tests/e2e/test_node_clients.py judges it.
// Usage: node clients.mjs URL GOOGLE_KEY AWS_ID AWS_SECRET PHOTO FACE_PHOTO TEXT_PHOTO
import { readFileSync } from "node:fs";
import vision from "@google-cloud/vision";
import {
  RekognitionClient, DetectLabelsCommand, DetectFacesCommand, DetectTextCommand,
  DetectModerationLabelsCommand, InvalidImageFormatException,
} from "@aws-sdk/client-rekognition";

const [url, googleKey, awsId, awsSecret, photoPath, facePath, textPath] = process.argv.slice(2);
const endpoint = new URL(url);
const [photo, face, text] = [photoPath, facePath, textPath].map((p) => readFileSync(p));
const out = {};

const google = new vision.ImageAnnotatorClient({
  apiEndpoint: endpoint.hostname, port: Number(endpoint.port), protocol: "http", fallback: true, apiKey: googleKey,
});
const [labels] = await google.labelDetection(photo);
out.googleLabels = labels.labelAnnotations.map((l) => l.description);
const [batch] = await google.batchAnnotateImages({ requests: [
  { image: { content: face }, features: [{ type: "FACE_DETECTION" }, { type: "LOGO_DETECTION" }] },
  { image: { content: text }, features: [{ type: "DOCUMENT_TEXT_DETECTION" }] },
] });
out.googleFaces = batch.responses[0].faceAnnotations.map((f) => ({
  landmarks: f.landmarks.map((l) => l.type), joy: f.joyLikelihood, roll: f.rollAngle }));
out.googleFaceError = batch.responses[0].error;
out.googleText = batch.responses[1].fullTextAnnotation.text;
try {
  await new vision.ImageAnnotatorClient({ apiEndpoint: endpoint.hostname, port: Number(endpoint.port),
    protocol: "http", fallback: true, apiKey: "wrong" }).labelDetection(photo);
} catch (e) { out.googleWrongKey = e.code; }

const credentials = { accessKeyId: awsId, secretAccessKey: awsSecret };
const aws = new RekognitionClient({ endpoint: url, region: "us-west-2", credentials, maxAttempts: 1 });
const detected = await aws.send(new DetectLabelsCommand({ Image: { Bytes: photo }, MaxLabels: 5 }));
out.awsLabels = detected.Labels.map((l) => ({ name: l.Name, instances: l.Instances.length }));
out.awsRequestId = detected.$metadata.requestId;
const faces = await aws.send(new DetectFacesCommand({ Image: { Bytes: face } }));
out.awsFaces = faces.FaceDetails.map((f) => ({ landmarks: f.Landmarks.map((l) => l.Type), pose: f.Pose }));
const words = await aws.send(new DetectTextCommand({ Image: { Bytes: text } }));
out.awsLines = words.TextDetections.filter((d) => d.Type === "LINE").map((d) => d.DetectedText);
const moderation = await aws.send(new DetectModerationLabelsCommand({ Image: { Bytes: photo } }));
out.awsModeration = moderation.ModerationModelVersion;
try {
  await aws.send(new DetectLabelsCommand({ Image: { Bytes: Buffer.from("not an image") } }));
} catch (e) { out.awsBadImage = e instanceof InvalidImageFormatException ? e.name : `other: ${e.name}`; }
try {
  await new RekognitionClient({ endpoint: url, region: "us-west-2", maxAttempts: 1,
    credentials: { accessKeyId: awsId, secretAccessKey: "wrong" } })
    .send(new DetectLabelsCommand({ Image: { Bytes: photo } }));
} catch (e) { out.awsWrongSecret = e.name; }
// Redirected by the environment alone (AWS_ENDPOINT_URL_REKOGNITION, AWS_REGION, the key pair).
const fromEnvironment = await new RekognitionClient({ maxAttempts: 1 })
  .send(new DetectLabelsCommand({ Image: { Bytes: photo }, MaxLabels: 1 }));
out.awsFromEnvironment = fromEnvironment.Labels.length;
console.log(JSON.stringify(out));
