// The Node.js example function: greets whoever the event names.

const GREETING = process.env.GREETING ?? "Hello";

export const handler = async (event, context) => {
  const name = event && typeof event === "object" && event.name ? event.name : "world";
  console.log(`greeting ${name} from ${context.functionName}`);
  return { message: `${GREETING}, ${name}!`, request_id: context.awsRequestId };
};
