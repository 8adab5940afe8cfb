/** Shapes of the API's answers, as the dashboard's queries select them. Times are ISO strings. */

export type AlarmPriority = 'high' | 'medium' | 'low' | 'technical';
export type AlarmState = 'raised' | 'escalated' | 'acknowledged' | 'silenced' | 'unsilenced' | 'latched';

export interface Vital {
  name: string;
  value: number;
  time: string | null;
  deviceId: string;
}

export interface Alarm {
  alarmId: string;
  deviceId: string;
  gateway: string;
  condition: string;
  priority: string;
  state: string;
  value: number;
  limit: number;
  raisedAt: string | null;
  clearedAt: string | null;
  updatedAt: string | null;
}

export interface RiskSummary {
  score: number;
  level: string;
  confidence: number;
  provisional: boolean;
  computedAt: string | null;
}

export interface Patient {
  pseudonym: string;
  site: string | null;
  vitals: Vital[];
  risk: RiskSummary | null;
  news2: number | null;
  activeAlarms: Alarm[];
  connected: boolean | null;
  batteryPercent: number | null;
  signalQuality: number | null;
  afBurden: number | null;
  rhythm: string | null;
  riskTrend: number[];
  audioPaused: boolean;
}

export interface AlarmCommandState {
  commandId: string;
  command: string;
  patient: string;
  gateway: string;
  actor: string;
  outcome: string;
  error: string;
  issuedAt: string | null;
  deliveredAt: string | null;
  appliedAt: string | null;
}

export interface AlarmComment {
  alarmId: string;
  author: string;
  role: string;
  text: string;
  at: string | null;
}

export interface AlarmLabel {
  alarmId: string;
  author: string;
  isTrue: boolean;
  note: string;
  at: string | null;
}

export interface AlarmActivity {
  alarmId: string;
  commands: AlarmCommandState[];
  comments: AlarmComment[];
  labels: AlarmLabel[];
}

export interface RiskFactor {
  name: string;
  value: number;
  contribution: number;
  description: string;
}

export interface RiskReport {
  score: number;
  confidence: number;
  level: string;
  news2: number | null;
  factors: RiskFactor[];
  recommendations: string[];
  modelName: string;
  modelVersion: string;
  baseline: boolean;
  widthS: number;
  windowStart: string | null;
  computedAt: string | null;
  provisional: boolean;
  trigger: string;
}

export interface FeatureWindow {
  start: string | null;
  end: string | null;
  widthS: number;
  hrMean: number | null;
  hrMin: number | null;
  hrMax: number | null;
  spo2Mean: number | null;
  spo2Min: number | null;
  systolicMean: number | null;
  diastolicMean: number | null;
  afBurden: number | null;
  completeness: number | null;
}

export interface Site {
  siteId: string;
  name: string;
}

export interface Gateway {
  gatewayId: string;
  site: string | null;
  health: string;
  softwareVersion: string;
  modelVersions: Record<string, string>;
  outboxRecords: number;
  outboxBytes: number;
  oldestUnsentAgeMs: number;
  lastHeartbeat: string | null;
  connectedDevices: number;
}

export interface TimelineEntry {
  time: string | null;
  /** first_heartbeat, health, software, model, silent, back or rollout. */
  kind: string;
  summary: string;
  detail: unknown;
}

export interface Model {
  name: string;
  version: string;
  task: string;
  sha256: string;
  metrics: unknown;
  card: string;
  createdAt: string | null;
  aliases: string[];
}

export interface RolloutMember {
  gatewayId: string;
  stage: number;
  status: string;
  activeVersion: string;
  alarmActive: boolean;
  windows: number;
  agreement: number | null;
  shadowS: number;
  candidateP99Ms: number;
  liveP99Ms: number;
  candidateAlarmRate: number;
  liveAlarmRate: number;
  candidateErrors: number;
  loadFailures: number;
  crashes: number;
  refusalCode: string;
  refusalDetail: string;
  lastReportAt: string | null;
}

export interface RolloutHistoryEntry {
  at: string | null;
  kind: string;
  gatewayId: string | null;
  actor: string;
  detail: unknown;
}

export interface RolloutSummary {
  rolloutId: string;
  model: string;
  candidateVersion: string;
  baselineVersion: string | null;
  state: string;
  stage: number;
  stageSizes: number[];
  decision: string;
  createdAt: string | null;
  finishedAt: string | null;
}

export interface Rollout extends RolloutSummary {
  plan: unknown;
  members: RolloutMember[];
  history: RolloutHistoryEntry[];
}

export interface RiskUpdate {
  userId: string;
  score: number;
  confidence: number;
  level: string;
  report: RiskReport;
}

// --- care: chat on patients and alarms, nutrition ---

/** What an automated answer rests on: kind is vitals, risk, alarm or window. */
export interface ChatCitation {
  kind: string;
  label: string;
  value: string;
  at: string | null;
}

export interface ChatMessage {
  id: string;
  sessionId: string;
  sender: string;
  role: string;
  automated: boolean;
  text: string;
  sentAt: string;
  alarmId: string | null;
  stripFrom: string | null;
  stripTo: string | null;
  citations: ChatCitation[];
}

export interface ChatSession {
  id: string;
  userId: string;
  startedAt: string;
  startedBy: string;
  alarmId: string | null;
  title: string;
  /** The caller's own unread count. */
  unreadCount: number;
  messageCount: number;
  lastMessageAt: string | null;
}

export interface Nutrient {
  name: string;
  amount: number | null;
  unit: string;
  /** low or high */
  status: string;
  referenceLow: number | null;
  referenceHigh: number | null;
  referenceSource: string;
  why: string;
  measuredAt: string | null;
  evidence: string;
}

export interface FoodItem {
  name: string;
  reason: string;
  ndbNo: string;
  nutrient: string;
  amountPer100g: number;
  unit: string;
  servingDescription: string | null;
  servingGrams: number | null;
  amountPerServing: number | null;
  sodiumMgPer100g: number;
}

export interface NutritionEvidence {
  /** lab, condition, medication or meal */
  kind: string;
  label: string;
  value: string;
  at: string | null;
  source: string;
}

export interface NutritionReport {
  deficiencies: Nutrient[];
  suggestedFoods: FoodItem[];
  excesses: Nutrient[];
  constraints: string[];
  evidence: NutritionEvidence[];
  generatedAt: string;
  notice: string;
}

export interface LabInput {
  analyte: string;
  value: number;
  unit: string;
  takenAt?: string | null;
}
