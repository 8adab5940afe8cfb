/** Every GraphQL operation the dashboard sends. */
import { gql } from '@apollo/client';

const ALARM_FIELDS = gql`
  fragment AlarmFields on Alarm {
    alarmId
    deviceId
    gateway
    condition
    priority
    state
    value
    limit
    raisedAt
    clearedAt
    updatedAt
  }
`;

const COMMAND_FIELDS = gql`
  fragment CommandFields on AlarmCommandState {
    commandId
    command
    patient
    gateway
    actor
    outcome
    error
    issuedAt
    deliveredAt
    appliedAt
  }
`;

const RISK_REPORT_FIELDS = gql`
  fragment RiskReportFields on RiskReport {
    score
    confidence
    level
    news2
    factors {
      name
      value
      contribution
      description
    }
    recommendations
    modelName
    modelVersion
    baseline
    widthS
    windowStart
    computedAt
    provisional
    trigger
  }
`;

export const PATIENTS = gql`
  ${ALARM_FIELDS}
  query Patients {
    patients {
      pseudonym
      site
      news2
      connected
      batteryPercent
      signalQuality
      afBurden
      rhythm
      riskTrend
      audioPaused
      vitals {
        name
        value
        time
        deviceId
      }
      risk {
        score
        level
        confidence
        provisional
        computedAt
      }
      activeAlarms {
        ...AlarmFields
      }
    }
  }
`;

export const ACKNOWLEDGE_ALARM = gql`
  ${COMMAND_FIELDS}
  mutation AcknowledgeAlarm($userId: ID!, $alarmId: ID!, $commandId: ID, $waitS: Float!) {
    acknowledgeAlarm(userId: $userId, alarmId: $alarmId, commandId: $commandId, waitS: $waitS) {
      ...CommandFields
    }
  }
`;

export const SILENCE_ALARM = gql`
  ${COMMAND_FIELDS}
  mutation SilenceAlarm($userId: ID!, $alarmId: ID, $durationS: Float!, $reason: String!, $commandId: ID, $waitS: Float!) {
    silenceAlarm(
      userId: $userId
      alarmId: $alarmId
      durationS: $durationS
      reason: $reason
      commandId: $commandId
      waitS: $waitS
    ) {
      ...CommandFields
    }
  }
`;

export const UNSILENCE_ALARM = gql`
  ${COMMAND_FIELDS}
  mutation UnsilenceAlarm($userId: ID!, $alarmId: ID, $commandId: ID, $waitS: Float!) {
    unsilenceAlarm(userId: $userId, alarmId: $alarmId, commandId: $commandId, waitS: $waitS) {
      ...CommandFields
    }
  }
`;

export const ALARM_COMMAND = gql`
  ${COMMAND_FIELDS}
  query AlarmCommand($commandId: ID!) {
    alarmCommand(commandId: $commandId) {
      ...CommandFields
    }
  }
`;

export const PATIENT_ALARMS = gql`
  ${ALARM_FIELDS}
  ${COMMAND_FIELDS}
  query PatientAlarms($userId: ID!) {
    alarms(userId: $userId, activeOnly: false) {
      ...AlarmFields
    }
    alarmActivity(userId: $userId, limit: 100) {
      alarmId
      commands {
        ...CommandFields
      }
      comments {
        alarmId
        author
        role
        text
        at
      }
      labels {
        alarmId
        author
        isTrue
        note
        at
      }
    }
  }
`;

export const COMMENT_ALARM = gql`
  mutation CommentAlarm($userId: ID!, $alarmId: ID!, $text: String!) {
    commentAlarm(userId: $userId, alarmId: $alarmId, text: $text) {
      alarmId
      author
      role
      text
      at
    }
  }
`;

export const LABEL_ALARM = gql`
  mutation LabelAlarm($userId: ID!, $alarmId: ID!, $isTrue: Boolean!, $note: String!) {
    labelAlarm(userId: $userId, alarmId: $alarmId, isTrue: $isTrue, note: $note) {
      alarmId
      author
      isTrue
      note
      at
    }
  }
`;

export const RISK_ASSESSMENT = gql`
  ${RISK_REPORT_FIELDS}
  query RiskAssessment($userId: ID!) {
    getRiskAssessment(userId: $userId) {
      ...RiskReportFields
    }
  }
`;

export const RISK_UPDATES = gql`
  ${RISK_REPORT_FIELDS}
  subscription RiskUpdates($userId: ID!) {
    realTimeRiskUpdate(userId: $userId) {
      userId
      score
      confidence
      level
      report {
        ...RiskReportFields
      }
    }
  }
`;

export const VITALS_HISTORY = gql`
  query VitalsHistory($userId: ID!, $widthS: Int!, $from: DateTime) {
    vitalsHistory(userId: $userId, widthS: $widthS, from: $from) {
      start
      end
      widthS
      hrMean
      hrMin
      hrMax
      spo2Mean
      spo2Min
      systolicMean
      diastolicMean
      afBurden
      completeness
    }
  }
`;

export const FLEET = gql`
  query Fleet {
    sites {
      siteId
      name
    }
    gateways {
      gatewayId
      site
      health
      softwareVersion
      modelVersions
      outboxRecords
      outboxBytes
      oldestUnsentAgeMs
      lastHeartbeat
      connectedDevices
    }
  }
`;

export const GATEWAY_TIMELINE = gql`
  query GatewayTimeline($gatewayId: ID!, $since: DateTime) {
    gatewayTimeline(gatewayId: $gatewayId, since: $since) {
      time
      kind
      summary
      detail
    }
  }
`;

export const MODELS = gql`
  query Models {
    models {
      name
      version
      task
      sha256
      metrics
      card
      createdAt
      aliases
    }
    sites {
      siteId
      name
    }
  }
`;

const ROLLOUT_SUMMARY_FIELDS = gql`
  fragment RolloutSummaryFields on Rollout {
    rolloutId
    model
    candidateVersion
    baselineVersion
    state
    stage
    stageSizes
    decision
    createdAt
    finishedAt
  }
`;

export const ROLLOUTS = gql`
  ${ROLLOUT_SUMMARY_FIELDS}
  query Rollouts {
    rollouts {
      ...RolloutSummaryFields
    }
  }
`;

export const ROLLOUT = gql`
  ${ROLLOUT_SUMMARY_FIELDS}
  query Rollout($rolloutId: ID!) {
    rollout(rolloutId: $rolloutId) {
      ...RolloutSummaryFields
      plan
      members {
        gatewayId
        stage
        status
        activeVersion
        alarmActive
        windows
        agreement
        shadowS
        candidateP99Ms
        liveP99Ms
        candidateAlarmRate
        liveAlarmRate
        candidateErrors
        loadFailures
        crashes
        refusalCode
        refusalDetail
        lastReportAt
      }
      history {
        at
        kind
        gatewayId
        actor
        detail
      }
    }
  }
`;

export const START_ROLLOUT = gql`
  ${ROLLOUT_SUMMARY_FIELDS}
  mutation StartRollout($model: String!, $version: String!, $plan: JSON!) {
    startRollout(model: $model, version: $version, plan: $plan) {
      ...RolloutSummaryFields
    }
  }
`;

const rolloutAction = (field: string) => gql`
  ${ROLLOUT_SUMMARY_FIELDS}
  mutation ${field[0]?.toUpperCase()}${field.slice(1)}($rolloutId: ID!, $reason: String!) {
    ${field}(rolloutId: $rolloutId, reason: $reason) {
      ...RolloutSummaryFields
    }
  }
`;

export const ROLLOUT_ACTIONS = {
  pause: rolloutAction('pauseRollout'),
  resume: rolloutAction('resumeRollout'),
  promote: rolloutAction('promoteRollout'),
  abort: rolloutAction('abortRollout'),
} as const;

export type RolloutAction = keyof typeof ROLLOUT_ACTIONS;

// --- care: chat on patients and alarms ---

const CHAT_MESSAGE_FIELDS = gql`
  fragment ChatMessageFields on ChatMessage {
    id
    sessionId
    sender
    role
    automated
    text
    sentAt
    alarmId
    stripFrom
    stripTo
    citations {
      kind
      label
      value
      at
    }
  }
`;

const CHAT_SESSION_FIELDS = gql`
  fragment ChatSessionFields on ChatSession {
    id
    userId
    startedAt
    startedBy
    alarmId
    title
    unreadCount
    messageCount
    lastMessageAt
  }
`;

export const CHAT_SESSIONS = gql`
  ${CHAT_SESSION_FIELDS}
  query ChatSessions($userId: ID!) {
    chatSessions(userId: $userId) {
      ...ChatSessionFields
    }
  }
`;

export const CHAT_MESSAGES = gql`
  ${CHAT_MESSAGE_FIELDS}
  query ChatMessages($sessionId: ID!, $limit: Int) {
    chatMessages(sessionId: $sessionId, limit: $limit) {
      ...ChatMessageFields
    }
  }
`;

export const START_CHAT_SESSION = gql`
  ${CHAT_SESSION_FIELDS}
  mutation StartChatSession($userId: ID!, $alarmId: ID, $title: String) {
    startChatSession(userId: $userId, alarmId: $alarmId, title: $title) {
      ...ChatSessionFields
    }
  }
`;

export const SEND_CHAT_MESSAGE = gql`
  ${CHAT_MESSAGE_FIELDS}
  mutation SendChatMessage($sessionId: ID!, $message: String!, $alarmId: ID, $stripFrom: DateTime, $stripTo: DateTime) {
    sendChatMessage(sessionId: $sessionId, message: $message, alarmId: $alarmId, stripFrom: $stripFrom, stripTo: $stripTo) {
      ...ChatMessageFields
    }
  }
`;

export const MARK_CHAT_READ = gql`
  ${CHAT_SESSION_FIELDS}
  mutation MarkChatRead($sessionId: ID!) {
    markChatRead(sessionId: $sessionId) {
      ...ChatSessionFields
    }
  }
`;

export const ASK_ASSISTANT = gql`
  ${CHAT_MESSAGE_FIELDS}
  mutation AskAssistant($sessionId: ID!, $question: String!) {
    askAssistant(sessionId: $sessionId, question: $question) {
      ...ChatMessageFields
    }
  }
`;

export const CHAT_MESSAGE_ADDED = gql`
  ${CHAT_MESSAGE_FIELDS}
  subscription ChatMessageAdded($userId: ID!) {
    chatMessageAdded(userId: $userId) {
      ...ChatMessageFields
    }
  }
`;

// --- care: nutrition ---

const NUTRIENT_FIELDS = gql`
  fragment NutrientFields on Nutrient {
    name
    amount
    unit
    status
    referenceLow
    referenceHigh
    referenceSource
    why
    measuredAt
    evidence
  }
`;

export const NUTRITION_ANALYSIS = gql`
  ${NUTRIENT_FIELDS}
  query NutritionAnalysis($userId: ID!) {
    getNutritionAnalysis(userId: $userId) {
      deficiencies {
        ...NutrientFields
      }
      excesses {
        ...NutrientFields
      }
      suggestedFoods {
        name
        reason
        ndbNo
        nutrient
        amountPer100g
        unit
        servingDescription
        servingGrams
        amountPerServing
        sodiumMgPer100g
      }
      constraints
      evidence {
        kind
        label
        value
        at
        source
      }
      generatedAt
      notice
    }
  }
`;

export const RECORD_LAB_RESULTS = gql`
  mutation RecordLabResults($userId: ID!, $labs: [LabInput!]!) {
    recordLabResults(userId: $userId, labs: $labs)
  }
`;
